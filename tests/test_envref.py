"""The one ``${VAR}`` grammar (broker.config.envref) is crossbar's, and every reader of a config uses it.

Before, Broker had three copies: nodeconfig's (crossbar's ``^\\$\\{(.+)\\}$``,
which ``broker check`` and ``broker run`` used to list the variables a config
needs) and a stricter identifier-only one in settings.py and configedit.py.
They agreed on every case here except a name that is not an identifier
(``${1ABC}``, ``${A-B}``, ``${A B}``, ``${A}${B}``): the strict copies called
it "not a reference", so ``broker check`` counted the variable as set while the
node refused the setting.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from crossbar.common import checkconfig

from broker.config import configedit, nodeconfig
from broker.config.envref import ENV_REFERENCE, env_reference
from broker.config.settings import resolve_secret
from broker.errors import ConfigError
from tests.node import PROJECT_CONFIG

#: (value, the variable it names or None); "strict:" where the identifier-only copies said otherwise.
CASES: list[tuple[object, str | None]] = [
    ("${BROKER_TOKEN_SECRET}", "BROKER_TOKEN_SECRET"),
    ("${lower_case_9}", "lower_case_9"),
    ("${_X}", "_X"),
    ("${VAR}\n", "VAR"),  # ``$`` also matches before a final newline, in crossbar's pattern too
    ("${1ABC}", "1ABC"),  # strict: None
    ("${A-B}", "A-B"),  # strict: None
    ("${A B}", "A B"),  # strict: None
    ("${A}${B}", "A}${B"),  # strict: None; crossbar looks up the variable "A}${B"
    ("${}", None),
    ("$VAR", None),  # without braces: a literal
    ("${VAR", None),  # unterminated
    ("VAR}", None),
    ("x${VAR}", None),  # only a whole value is a reference
    ("${VAR}x", None),
    ("${A\nB}", None),
    ("", None),
    (5, None),
    (None, None),
]


@pytest.mark.parametrize(("value", "name"), CASES, ids=[repr(value) for value, _ in CASES])
def test_the_grammar(value: object, name: str | None) -> None:
    assert env_reference(value) == name


@pytest.mark.parametrize(("value", "name"), CASES, ids=[repr(value) for value, _ in CASES])
def test_crossbar_reads_the_same_variable(value: object, name: str | None) -> None:
    """What crossbar's own ``maybe_from_env`` substitutes for a WAMP-CRA secret."""
    assert ENV_REFERENCE.pattern == checkconfig._ENVPAT.pattern
    found = checkconfig._ENVPAT.match(value) if isinstance(value, str) else None
    assert (found.group(1) if found else None) == name


def test_a_settings_secret_reads_any_name_crossbar_would() -> None:
    assert resolve_secret("${1ABC}", "$.x", {"1ABC": "s3cret"}) == "s3cret"
    with pytest.raises(ConfigError) as error:
        resolve_secret("${A-B}", "$.x", {})
    assert (error.value.path, error.value.message) == ("$.x", "environment variable A-B is not set")


@pytest.mark.parametrize("value", ["$VAR", "${VAR", "plain"])
def test_a_settings_secret_that_is_no_reference_is_refused(value: str) -> None:
    with pytest.raises(ConfigError) as error:
        resolve_secret(value, "$.x", {"VAR": "s3cret"})
    assert error.value.message == "must reference an environment variable, written as ${NAME}"


def test_the_config_readers_agree_on_a_name_that_is_no_identifier() -> None:
    config: dict[str, Any] = json.loads(PROJECT_CONFIG.read_text())
    extra = config["workers"][0]["components"][0]["extra"]
    extra["publishers"]["dev"]["secret"] = "${dev-key}"
    assert ("$.workers[0].components[0].extra.publishers.dev.secret", "dev-key") in nodeconfig.env_references(
        config
    )
    assert configedit.remove_publisher(config, "dev").secret_var == "dev-key"
