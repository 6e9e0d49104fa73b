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


# -- subscribe_gapless: every recovery failure is unrecoverable, never a silent gap ------------


class SubscribeOptions:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


@dataclass
class EventDetails:
    topic: str | None = None


class Subscription:
    def __init__(self) -> None:
        self.active = True

    async def unsubscribe(self) -> None:
        self.active = False


def position(cursor: int) -> dict[str, Any]:
    return {"epoch": "E", "seq": cursor, "cursor": cursor}


def page(*cursors: int, more: bool = False) -> dict[str, Any]:
    events = [
        {
            "topic": "public.t",
            "args": [f"e{c}"],
            "kwargs": {},
            "position": {"epoch": "E", "seq": c, "cursor": c},
        }
        for c in cursors
    ]
    return {"unrecoverable": False, "events": events, "more": more, "epoch": "E", "cursor": 99}


class RecoveringSession:
    """Answers each ``broker.recover`` call with the next scripted outcome; a live event
    (cursor 50) arrives during the first call, so held events are seen to be released."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.asked: list[dict[str, Any]] = []
        self.handler: Any = None
        self.details_arg = ""
        self.subscription = Subscription()

    async def subscribe(self, handler: Any, topic: str, options: SubscribeOptions) -> Subscription:
        self.handler = handler
        self.details_arg = options.kwargs["details_arg"]
        return self.subscription

    async def call(self, procedure: str, topic: str, **kwargs: Any) -> Any:
        assert procedure == "broker.recover"
        self.asked.append(kwargs)
        if len(self.asked) == 1:
            live = {"epoch": "E", "seq": 50, "cursor": 50}
            self.handler("e50", **{self.details_arg: EventDetails("public.t")}, broker_position=live)
        outcome = self.outcomes.pop(0)
        if outcome == "hang":
            await asyncio.sleep(3600)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


@pytest.fixture
def fake_subscribe(monkeypatch: pytest.MonkeyPatch) -> None:
    wamp_types = sys.modules["autobahn.wamp.types"]
    monkeypatch.setattr(wamp_types, "SubscribeOptions", SubscribeOptions, raising=False)


def resume(session: RecoveringSession, **kwargs: Any) -> tuple[list[Any], list[dict[str, Any]]]:
    from broker.client.wamp import subscribe_gapless

    seen: list[Any] = []
    gaps: list[dict[str, Any]] = []

    async def run() -> None:
        await subscribe_gapless(
            session,
            lambda topic, data, position: seen.append(data),
            "public.t",
            resume_from=("E", 10),
            recover_timeout=0.2,
            **kwargs,
        )

    async def bounded() -> None:
        await asyncio.wait_for(run(), 5)  # a recovery that hangs must not hang the caller

    kwargs.setdefault("on_unrecoverable", gaps.append)
    asyncio.run(bounded())
    return seen, gaps


@pytest.mark.usefixtures("fake_subscribe")
def test_gapless_pages_until_more_is_false() -> None:
    session = RecoveringSession(page(11, 12, more=True), page(13, more=True), page(14))
    seen, gaps = resume(session)
    assert seen == ["e11", "e12", "e13", "e14", "e50"]
    assert [a["after"] for a in session.asked] == [10, 12, 13]
    assert gaps == []


@pytest.mark.usefixtures("fake_subscribe")
@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        (
            ApplicationError("wamp.error.invalid_argument"),
            "recovery failed: ApplicationError: wamp.error.invalid_argument",
        ),
        ("hang", "recovery failed: TimeoutError: "),
        ({"events": []}, "recovery failed: the answer is not a broker.recover answer"),
        (page(more=True), "recovery failed: the answer says more but holds no event"),
        (
            {**page(11), "events": [{"topic": "public.t", "args": []}]},
            "recovery failed: an event in the answer lacks",
        ),
    ],
    ids=["error", "timeout", "not-an-answer", "more-without-events", "event-without-position"],
)
def test_a_failed_recovery_is_unrecoverable(outcome: Any, reason: str) -> None:
    session = RecoveringSession(page(11, 12, more=True), outcome)
    seen, gaps = resume(session)
    assert seen == ["e11", "e12", "e50"]  # what was recovered, then live events
    assert len(gaps) == 1 and gaps[0]["unrecoverable"] is True
    assert gaps[0]["reason"].startswith(reason), gaps[0]["reason"]
    assert (gaps[0]["epoch"], gaps[0]["cursor"]) == ("E", 12)  # the last position handled
    assert session.subscription.active


@pytest.mark.usefixtures("fake_subscribe")
@pytest.mark.parametrize(
    "outcome",
    [
        ApplicationError("wamp.error.invalid_argument"),
        {"unrecoverable": True, "reason": "epoch changed: the history was reset", "epoch": "F", "cursor": 3},
    ],
    ids=["failed", "unrecoverable"],
)
def test_without_a_callback_the_gap_raises(outcome: Any) -> None:
    from broker.client.wamp import Unrecoverable

    session = RecoveringSession(outcome)
    with pytest.raises(Unrecoverable) as raised:
        resume(session, on_unrecoverable=None)
    assert raised.value.answer["unrecoverable"] is True
    assert not session.subscription.active  # nothing keeps delivering past the gap
