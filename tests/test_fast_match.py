"""The fast dispatch's matching of a run's topics (:func:`broker.router.crossbar.fastpublish.matches`),
against crossbar's own subscription map, without a node.

A run of an HTTP batch matches each topic once; a topic one of whose receivers
is an in-router component (which can subscribe while it receives an EVENT) is
matched anew for every event and empties the cache, so what such a component
subscribes mid-run gets the rest of the run, as crossbar's per-event matching gives.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from crossbar.router.observation import UriObservationMap
from crossbar.router.session import RouterApplicationSession

from broker.router.crossbar.fastpublish import matches


class _CountingMap(UriObservationMap):  # type: ignore[misc]
    """Crossbar's subscription map, counting its ``match_observations`` calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def match_observations(self, uri: str) -> Any:
        self.calls.append(uri)
        return super().match_observations(uri)


class _Session:
    """A receiver as the map holds it: hashable by identity, with a transport."""

    def __init__(self, transport: object) -> None:
        self._transport = transport


def _session(in_router: bool) -> _Session:
    return _Session(object.__new__(RouterApplicationSession) if in_router else SimpleNamespace())


def _broker(*subscriptions: tuple[_Session, str, str]) -> SimpleNamespace:
    """A realm's broker, as :func:`matches` reads it, whose map holds ``subscriptions``
    (receiver, URI, match policy)."""
    broker = SimpleNamespace(_subscription_map=_CountingMap())
    for session, uri, match in subscriptions:
        broker._subscription_map.add_observer(session, uri, match=match)
    return broker


def test_a_runs_topics_are_matched_once_each() -> None:
    client = _session(in_router=False)
    broker = _broker((client, "app.a", "exact"), (client, "app", "prefix"))
    matched: dict[str, list[Any]] = {}
    for topic in ["app.a", "app.b", "app.a", "app.a", "app.b"]:
        uris = sorted(s.uri for s in matches(broker, topic, matched))
        assert uris == (["app", "app.a"] if topic == "app.a" else ["app"])
    assert broker._subscription_map.calls == ["app.a", "app.b"]


def test_a_topic_an_in_router_component_receives_is_matched_every_time_and_empties_the_cache() -> None:
    client, component = _session(in_router=False), _session(in_router=True)
    broker = _broker((client, "app.b", "exact"), (component, "app.a", "exact"))
    matched: dict[str, list[Any]] = {}
    assert [s.uri for s in matches(broker, "app.b", matched)] == ["app.b"]
    assert [s.uri for s in matches(broker, "app.a", matched)] == ["app.a"]
    # the component, handed app.a's EVENT, subscribes app.b by prefix: the rest of the run sees it
    broker._subscription_map.add_observer(component, "app", match="prefix")
    assert sorted(s.uri for s in matches(broker, "app.b", matched)) == ["app", "app.b"]
    assert sorted(s.uri for s in matches(broker, "app.a", matched)) == ["app", "app.a"]
    assert broker._subscription_map.calls == ["app.b", "app.a", "app.b", "app.a"]
    assert matched == {}


def test_a_receiver_that_leaves_within_the_run_is_read_live_from_the_matched_subscription() -> None:
    first, second = _session(in_router=False), _session(in_router=False)
    broker = _broker((first, "app.a", "exact"), (second, "app.a", "exact"))
    matched: dict[str, list[Any]] = {}
    (subscription,) = matches(broker, "app.a", matched)
    broker._subscription_map.drop_observer(first, subscription)
    (again,) = matches(broker, "app.a", matched)
    assert again is subscription and set(again.observers) == {second}
