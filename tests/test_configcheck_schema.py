"""The known-keys tables and their near-miss suggestions (broker.config.check.schema)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from broker.config.check import schema


@pytest.mark.parametrize(
    ("key", "known", "suggestion"),
    [
        ("rols", schema.REALM, " (did you mean 'roles'?)"),
        ("event_history", schema.STORE, " (did you mean 'event-history'?)"),
        ("allowed_origin", schema.WEBSOCKET_OPTIONS, " (did you mean 'allowed_origins'?)"),
        (
            "authenticator_realm",
            schema.AUTH_METHODS["ticket"]["dynamic"],
            " (did you mean 'authenticator-realm'?)",
        ),
        ("colour", schema.REALM, ""),
    ],
)
def test_suggest(key: str, known: frozenset[str], suggestion: str) -> None:
    assert schema.suggest(key, known) == suggestion


def test_hint_lists_the_choices_when_nothing_is_close() -> None:
    assert schema.hint("lmdb", schema.STORE_TYPES, "expected one of") == " (expected one of: memory)"
    assert schema.hint(42, ["a"], "roles") == " (roles: a)"
    assert schema.hint("x", [], "roles") == " (roles: none)"


def test_the_tables_hold_what_crossbar_26_10_checks() -> None:
    """Crossbar's own validator accepts each WebSocket option name (it then refuses the value)."""
    from crossbar.common import checkconfig

    check: Callable[[dict[str, object]], None] = checkconfig.check_websocket_options
    for key in schema.WEBSOCKET_OPTIONS - {"flash_policy"}:  # crossbar takes any flash_policy
        with pytest.raises(checkconfig.InvalidConfigException) as info:
            check({key: object()})
        assert "unknown attribute" not in str(info.value), key
    with pytest.raises(checkconfig.InvalidConfigException, match="unknown attribute"):
        check({"allowed_origin": []})
