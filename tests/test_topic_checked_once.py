"""A WAMP publish's topic is checked once: by the position hook, not again by the fast dispatch.

:func:`broker.router.positions.process_publish` asks
:func:`broker.router.crossbar.fastpublish.uri_refusal` (through
:func:`broker.router.crossbar.publish.refuse_topic`) before it authorizes or
stores anything; the dispatch it then hands the publish to must not ask again.
Here without a node: crossbar's realm broker, router and the publisher's
session as far as the hook and the fast dispatch read them, the authorization
already in the router's cache (so everything runs synchronously), no history.
What crossbar answers for a refused topic, on real nodes with ``uri_check``
strict and loose and ``wamp.`` for every role, is ``tests/test_fast_publish.py``'s.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from autobahn.wamp import message

from broker.router import positions
from broker.router.crossbar import fastpublish
from broker.router.crossbar import publish as crossbar_publish

TOPIC = "public.once"
ALLOWED = {"allow": True, "disclose": False, "cache": True}


class _Router:
    """Crossbar's ``Router`` as the hook and the fast dispatch read it: untraced, one cached grant."""

    def __init__(self, sent: list[tuple[Any, Any]]) -> None:
        self._is_traced = self._trace_traffic = False
        self._inventory = None
        self._roles = {"backend": object()}
        self._authorization_cache = {("app", "backend", TOPIC, "publish"): ALLOWED}
        self._message_stats: dict[str, dict[str, int]] = {"sent": {}}
        self.sent = sent

    def send(self, session: Any, msg: Any) -> None:
        self.sent.append((session, msg))
        counts = self._message_stats["sent"]
        counts[msg.__class__.__name__.lower()] = counts.get(msg.__class__.__name__.lower(), 0) + 1


def _session(session_id: int) -> SimpleNamespace:
    return SimpleNamespace(
        _session_id=session_id,
        _authid=f"s{session_id}",
        _authrole="backend",
        _realm="app",
        _transport=SimpleNamespace(),
    )


def _broker(sent: list[tuple[Any, Any]], subscriber: Any) -> SimpleNamespace:
    subscription = SimpleNamespace(id=11, match=message.Subscribe.MATCH_EXACT, observers=[subscriber])
    return SimpleNamespace(
        _router=_Router(sent),
        _option_uri_strict=False,
        _event_store=None,
        _subscription_map=SimpleNamespace(match_observations=lambda topic: [subscription]),
        _options=SimpleNamespace(event_dispatching_chunk_size=0),
    )


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The topics :func:`fastpublish.uri_refusal` is asked about, in order (answers unchanged)."""
    topics: list[str] = []
    check = fastpublish.uri_refusal

    def counted(broker: Any, session: Any, topic: str) -> str | None:
        topics.append(topic)
        return check(broker, session, topic)

    monkeypatch.setattr(fastpublish, "uri_refusal", counted)
    monkeypatch.setattr(fastpublish, "_state", {"on": True})
    return topics


def test_an_accepted_topic_is_checked_once_and_dispatched(asked: list[str]) -> None:
    sent: list[tuple[Any, Any]] = []
    publisher, subscriber = _session(1), _session(2)
    broker = _broker(sent, subscriber)
    publish = message.Publish(7, TOPIC, args=[1], acknowledge=True)
    positions.process_publish(broker, publisher, publish)
    assert asked == [TOPIC]
    assert [(who, type(msg)) for who, msg in sent] == [
        (publisher, message.Published),
        (subscriber, message.Event),
    ]
    published, event = sent[0][1], sent[1][1]
    assert published.request == 7 and event.publication == published.publication
    assert (event.subscription, event.args, event.topic) == (11, [1], None)


def test_a_refused_topic_is_checked_once_and_left_to_crossbar(
    asked: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``wamp.`` from ``backend``: crossbar's own ``processPublish`` answers it; nothing dispatched."""
    handed: list[Any] = []
    monkeypatch.setitem(crossbar_publish._original, "processPublish", lambda b, s, p: handed.append(p))
    sent: list[tuple[Any, Any]] = []
    broker = _broker(sent, _session(2))
    publish = message.Publish(8, "wamp.once", args=[1], acknowledge=True)
    positions.process_publish(broker, _session(1), publish)
    assert asked == ["wamp.once"]
    assert handed == [publish] and sent == []
