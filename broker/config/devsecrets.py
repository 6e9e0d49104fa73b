"""Development secrets (WAMP-CRA users, publisher key, token signing), generated on first use.

Why: the node config reads the ``backend`` and ``operator`` secrets from the
environment (``${BROKER_BACKEND_SECRET}``, ``${BROKER_OPERATOR_SECRET}``) so
deployments keep secrets out of files, yet a developer should be able to
``make run`` and then ``broker publish`` from a second shell with no setup.
``broker run`` therefore writes random secrets to ``secrets.env`` next to the
config (git-ignored, mode 0600) the first time it needs them, and every
``broker`` command falls back to that file when the environment sets nothing.
A secret set but empty (``BROKER_BACKEND_SECRET=``) is an error, never an
empty secret nor a silent fallback, and a client command names where its
secret came from (:class:`Secret`), so a refused signature says which value
to fix. No crossbar, no Twisted.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from broker.config import atomicfile
from broker.errors import ConfigError

#: The dev secrets file's name, in the directory of the node config.
FILENAME: Final = "secrets.env"

#: The variables a new dev secrets file defines.
GENERATED: Final = (
    "BROKER_BACKEND_SECRET",
    "BROKER_OPERATOR_SECRET",
    "BROKER_PUBLISHER_SECRET",
    "BROKER_TOKEN_SECRET",
)


def path_for(config_dir: Path) -> Path:
    """The dev secrets file that belongs to the node config in ``config_dir``."""
    return config_dir / FILENAME


def parse(text: str, path: Path) -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines; blank lines and ``#`` comments are skipped."""
    values: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{path}:{lineno}", "expected a KEY=VALUE line")
        values[key.strip()] = value.strip()
    return values


def load(path: Path) -> dict[str, str]:
    """Read the secrets in ``path``; an absent file has none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return parse(text, path)


def load_or_create(path: Path) -> dict[str, str]:
    """Read the secrets in ``path``, first creating it with fresh random ones if absent.

    The file appears atomically and complete, readable by its owner only, and
    an existing file is never replaced: if two commands race to create it, both
    end up with the secrets of the one that won.
    """
    if path.exists():
        values = load(path)
        missing = [name for name in GENERATED if name not in values]
        if missing:  # a file from an older Broker: add the secrets it lacks
            with path.open("a", encoding="utf-8") as f:
                f.write("".join(f"{name}={secrets.token_urlsafe(32)}\n" for name in missing))
            values = load(path)
        return values
    text = "".join(f"{name}={secrets.token_urlsafe(32)}\n" for name in GENERATED)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    return load(path)


def provides(path: Path) -> frozenset[str]:
    """The variables ``path`` defines, or will define once :func:`load_or_create` makes it."""
    return frozenset(load(path)) | frozenset(GENERATED)


_EMPTY_FIX: Final = "set it to the secret, or unset it to use "
_EMPTY_LINE: Final = "write the secret after the '=' (an empty secret is refused)"


@dataclass(frozen=True)
class Secret:
    """A secret's value and where it came from, for error messages."""

    value: str = field(repr=False)
    #: ``the environment variable NAME`` or ``NAME in /path/secrets.env``.
    source: str


def lookup(name: str, config_dir: Path) -> Secret | None:
    """The secret ``name``: from the environment, else from the dev secrets file, else ``None``.

    Raises :class:`ConfigError` if the value found is empty: an empty
    ``BROKER_BACKEND_SECRET=`` in a shell would otherwise hide the file's value.
    Never creates the file (see :func:`secret`).
    """
    file = path_for(config_dir).absolute()
    if name in os.environ:
        if not os.environ[name]:
            raise ConfigError(name, f"the environment variable is empty: {_EMPTY_FIX}{file}")
        return Secret(os.environ[name], f"the environment variable {name}")
    value = load(file).get(name)
    if value is None:
        return None
    if not value:
        raise ConfigError(f"{file}", f"{name} is empty: {_EMPTY_LINE}")
    return Secret(value, f"{name} in {file}")


def empty_errors(
    references: Iterable[tuple[str, str]], from_file: Collection[str], file: Path
) -> list[ConfigError]:
    """An error for each ``(json_path, VAR)`` reference whose variable is set but empty
    in the environment (or, for ``from_file``, in ``file``), once per variable."""
    errors = []
    seen: set[str] = set()
    for path, var in references:
        if var in seen or os.environ.get(var) != "":
            continue
        seen.add(var)
        if var in from_file:
            errors.append(ConfigError(path, f"{var} in {file} is empty: {_EMPTY_LINE}"))
        else:
            errors.append(ConfigError(path, f"the environment variable {var} is empty: {_EMPTY_FIX}{file}"))
    return errors


def secret(name: str, config_dir: Path) -> str | None:
    """The value of ``name``: from the environment, else from the dev secrets file.

    Never creates the file (only ``broker run`` does): a client command run
    from the wrong directory must not leave secrets behind.
    """
    if name in os.environ:
        return os.environ[name]
    return load(path_for(config_dir)).get(name)


def update(path: Path, changes: dict[str, str | None]) -> None:
    """Set (or, for ``None``, remove) the secrets in ``changes``, rewriting ``path`` atomically.

    Other lines, comments included, stay as they are; the file stays private
    to its owner (0600). ``broker config`` stores generated publisher secrets here.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    pending = dict(changes)
    out = []
    for line in lines:
        name = line.partition("=")[0].strip()
        if "=" in line and not line.lstrip().startswith("#") and name in pending:
            value = pending.pop(name)
            if value is not None:
                out.append(f"{name}={value}")
        else:
            out.append(line)
    out += [f"{name}={value}" for name, value in pending.items() if value is not None]
    atomicfile.write_text(path, "".join(f"{line}\n" for line in out), mode=0o600)
