"""The ``Date`` of Twisted's web answers, once per second (item 20, :mod:`broker.router.crossbar.dates`)."""

from __future__ import annotations

import pytest
from twisted.web import http, server

from broker.router.crossbar import dates


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self.now


def counting() -> tuple[list[object], object]:
    made: list[object] = []

    def original(when: float | None = None) -> bytes:
        made.append(when)
        return http.datetimeToString(when)

    return made, original


def test_the_text_is_that_of_the_current_second_made_once_per_second() -> None:
    made, original = counting()
    clock = Clock(1_700_000_000.25)
    date = dates.cached(original, clock)  # type: ignore[arg-type]
    assert date() == http.datetimeToString(1_700_000_000) == b"Tue, 14 Nov 2023 22:13:20 GMT"
    clock.now = 1_700_000_000.99
    assert date() == b"Tue, 14 Nov 2023 22:13:20 GMT"
    clock.now = 1_700_000_001.0
    assert date() == b"Tue, 14 Nov 2023 22:13:21 GMT"
    assert made == [1_700_000_000, 1_700_000_001]


def test_a_given_time_is_formatted_as_before() -> None:
    made, original = counting()
    date = dates.cached(original, Clock(0.0))  # type: ignore[arg-type]
    assert date(86400 * 365) == http.datetimeToString(86400 * 365)
    assert made == [86400 * 365]


def test_install_gives_requests_the_kept_date(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "datetimeToString", server.datetimeToString)  # undone after
    dates.install()
    assert server.datetimeToString is not http.datetimeToString
    assert server.datetimeToString() == http.datetimeToString()  # type: ignore[attr-defined]
