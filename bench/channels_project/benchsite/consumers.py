"""Subscribers join a group; a publisher's message is group_send to it and acknowledged."""

from channels.generic.websocket import AsyncWebsocketConsumer

GROUP = "bench"


class Subscriber(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()
        await self.send(text_data="ready")

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def bench_event(self, event: dict[str, str]) -> None:
        await self.send(text_data=event["text"])


class Publisher(AsyncWebsocketConsumer):
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.channel_layer.group_send(GROUP, {"type": "bench.event", "text": text_data})
        await self.send(text_data="ack")
