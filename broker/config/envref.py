"""``${VAR}``: how a node config value names an environment variable, in one grammar.

Why one module: crossbar substitutes ``${VAR}`` itself in the values it reads
(WAMP-CRA secrets, tickets: ``crossbar.common.checkconfig.maybe_from_env``),
Broker resolves its own settings' secrets, ``broker check`` and ``broker run``
list the variables a config needs, and ``broker config`` edits publisher keys.
If these disagreed about what a reference is, a config could pass the check
and then start with a literal ``${...}`` as a secret. So all of them use
crossbar's pattern, ``^\\$\\{(.+)\\}$``: the whole value is ``${`` + a
non-empty name + ``}``, and the name is whatever stands between (crossbar
looks it up in the environment as is). ``$VAR`` without braces is a literal
(crossbar reads it as a variable only for a listening port, which Broker
never resolves). No I/O.
"""

from __future__ import annotations

import re
from typing import Final

#: crossbar's ``_ENVPAT`` (crossbar/common/checkconfig.py), character for character.
ENV_REFERENCE: Final = re.compile(r"^\$\{(.+)\}$")


def env_reference(value: object) -> str | None:
    """The variable ``value`` names if it is a ``${VAR}`` reference, else None."""
    found = ENV_REFERENCE.match(value) if isinstance(value, str) else None
    return found.group(1) if found else None
