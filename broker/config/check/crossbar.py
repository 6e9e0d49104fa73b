"""``crossbar check``, run last, for what Broker's own checks do not model.

Why: Broker's checks cover the parts of a node config Broker uses; crossbar's
own validator knows every value range and the parts Broker never configures.
It is slow (seconds: it imports crossbar) and names no path, so it runs only
once Broker's checks found nothing, on a rendered copy (see
:func:`broker.config.nodeconfig.render`) in a temporary node directory.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from broker.config import nodeconfig
from broker.errors import ConfigError

#: Seconds ``crossbar check`` may take.
CHECK_TIMEOUT: Final = 120


def crossbar_check(crossbar: Path, config: Mapping[str, Any], config_dir: Path) -> ConfigError | None:
    """Run the ``crossbar`` executable's ``check`` on ``config``; its error, if any, at ``$``."""
    with tempfile.TemporaryDirectory(prefix="broker-check-") as tmp:
        nodeconfig.write(Path(tmp), nodeconfig.render(config, config_dir))
        try:
            proc = subprocess.run(  # noqa: S603 - our own crossbar, fixed arguments
                [str(crossbar), "check", "--cbdir", tmp],
                capture_output=True,
                text=True,
                timeout=CHECK_TIMEOUT,
                cwd=tmp,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return ConfigError("$", f"crossbar check: no answer within {CHECK_TIMEOUT} s")
    if proc.returncode == 0:
        return None
    out = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    err = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in out + err if line.startswith("Error")]
    line = (errors or err or out or [f"exit status {proc.returncode}"])[-1]
    return ConfigError("$", f"crossbar check: {line.removeprefix('Error: ')}")
