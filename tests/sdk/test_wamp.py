"""``publish_acknowledged`` against a stand-in autobahn (this venv has none, on purpose)."""

from __future__ import annotations

import asyncio
import sys
import types
from dataclasses import dataclass
from typing import Any

import pytest

from broker.client.wamp import publish_acknowledged


class PublishOptions:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


class ApplicationError(Exception):
    pass


@dataclass
class Publication:
    id: int


class Session:
    """Records publishes; refuses topics under ``broker.`` like the router does."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def publish(self, topic: str, *args: Any, options: PublishOptions) -> Publication:
        self.calls.append((topic, args, options.kwargs))
        if topic.startswith("broker."):
            raise ApplicationError("wamp.error.not_authorized")
        return Publication(4242)


@pytest.fixture(autouse=True)
def fake_autobahn(monkeypatch: pytest.MonkeyPatch) -> None:
    wamp_types = types.ModuleType("autobahn.wamp.types")
    wamp_types.PublishOptions = PublishOptions  # type: ignore[attr-defined]
    for name, module in [
        ("autobahn", types.ModuleType("autobahn")),
        ("autobahn.wamp", types.ModuleType("autobahn.wamp")),
        ("autobahn.wamp.types", wamp_types),
    ]:
        monkeypatch.setitem(sys.modules, name, module)


def test_publishes_data_as_the_single_argument_with_acknowledgement() -> None:
    session = Session()
    assert asyncio.run(publish_acknowledged(session, "public.x", {"n": 1})) == 4242
    assert session.calls == [("public.x", ({"n": 1},), {"acknowledge": True})]


def test_a_refusal_is_raised() -> None:
    with pytest.raises(ApplicationError, match="not_authorized"):
        asyncio.run(publish_acknowledged(Session(), "broker.internal", 1))
