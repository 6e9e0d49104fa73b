"""Where a client command's secret came from, named when the node refuses it; an empty one refused.

``broker publish`` as ``backend`` against a real node, its secret from the
environment or from a dev secrets file of its own (``--config`` in a temporary
directory, ``--url`` pointing at the node).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.node import BACKEND_SECRET, BROKER, Node
from tests.rawwamp import EVENT, SUBSCRIBED, RawWamp

pytestmark = pytest.mark.node

SIGNATURE_INVALID = "broker: publish failed: wamp.error.not_authorized: WAMP-CRA client signature is invalid"


def publish(node: Node, config_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``broker publish public.secrets 1`` with ``env`` and no other BROKER_ variable."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    return subprocess.run(
        [str(BROKER), "publish", "public.secrets", "1", "--url", node.ws_url],
        capture_output=True,
        text=True,
        env={**clean, **env},
        cwd=config_dir,
        timeout=60,
        check=False,
    )


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A directory whose ``.crossbar/secrets.env`` holds a wrong backend secret."""
    crossbar = tmp_path / ".crossbar"
    crossbar.mkdir()
    (crossbar / "secrets.env").write_text("BROKER_BACKEND_SECRET=wrong-in-file\n")
    return tmp_path


@pytest.fixture
def canary(node: Node) -> RawWamp:
    """An anonymous subscriber to the topic the commands publish to."""
    client = RawWamp(node.ws_url, origin=node.origin)
    assert client.hello()[0] == 2
    assert client.subscribe("public.secrets")[0] == SUBSCRIBED
    return client


def test_a_wrong_secret_from_the_environment_is_named(node: Node, config_dir: Path, canary: RawWamp) -> None:
    done = publish(node, config_dir, BROKER_BACKEND_SECRET="wrong-in-env")
    assert done.returncode == 1
    assert done.stderr == (
        f"{SIGNATURE_INVALID} (the secret for 'backend' came from the environment variable "
        "BROKER_BACKEND_SECRET)\n"
    )
    assert_canary_receives(node, config_dir, canary)


def test_a_wrong_secret_from_the_secrets_file_is_named(node: Node, config_dir: Path, canary: RawWamp) -> None:
    done = publish(node, config_dir)
    assert done.returncode == 1
    file = config_dir / ".crossbar" / "secrets.env"
    assert done.stderr == (
        f"{SIGNATURE_INVALID} (the secret for 'backend' came from BROKER_BACKEND_SECRET in {file})\n"
    )
    assert_canary_receives(node, config_dir, canary)


def test_an_empty_secret_in_the_environment_is_refused_before_connecting(
    node: Node, config_dir: Path, canary: RawWamp
) -> None:
    file = config_dir / ".crossbar" / "secrets.env"
    # the right secret, which the empty variable must not silently hide
    file.write_text(f"BROKER_BACKEND_SECRET={BACKEND_SECRET}\n")
    done = publish(node, config_dir, BROKER_BACKEND_SECRET="")
    assert done.returncode == 1
    assert done.stderr == (
        "broker: config error: BROKER_BACKEND_SECRET: the environment variable is empty: set it to the "
        f"secret, or unset it to use {file}\n"
    )
    assert_canary_receives(node, config_dir, canary)


def assert_canary_receives(node: Node, config_dir: Path, canary: RawWamp) -> None:
    """The refused command changed nothing: with the right secret, the canary gets the event."""
    done = publish(node, config_dir, BROKER_BACKEND_SECRET=BACKEND_SECRET)
    assert done.returncode == 0, done.stderr
    event = canary.event()
    assert (event[0], event[4]) == (EVENT, [1])
