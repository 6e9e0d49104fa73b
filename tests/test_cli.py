"""The ``broker`` command line, without a running node.

``check`` runs the real ``crossbar check``; ``run`` is stopped at the point
where it would ``exec`` crossbar; the client commands are tested up to their
first network step (and one goes as far as a refused connection, in a
subprocess, since the reactor cannot run twice in one process).
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import broker
from broker.cli import main as cli
from broker.config import devsecrets
from broker.router.crossbar import versions

ROOT = Path(__file__).resolve().parent.parent
PROJECT_CONFIG = ROOT / ".crossbar" / "config.json"
BROKER = Path(sys.executable).with_name("broker")
SECRETS = (
    "BROKER_BACKEND_SECRET",
    "BROKER_OPERATOR_SECRET",
    "BROKER_PUBLISHER_SECRET",
    "BROKER_TOKEN_SECRET",
)
USERS = "$.workers[0].transports[0].paths.ws.auth.wampcra.users"


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every node secret set in the environment."""
    for name in SECRETS:
        monkeypatch.setenv(name, f"test-{name.lower()}")


@pytest.fixture
def no_secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No node secret set in the environment (nor left set by ``broker run``)."""
    for name in SECRETS:
        monkeypatch.setenv(name, "")  # so that teardown restores the original state
        monkeypatch.delenv(name)


@pytest.fixture
def config_copy(tmp_path: Path) -> Callable[[Callable[[dict[str, Any]], None]], Path]:
    """Write a changed copy of the project config into its own directory."""

    def write(mutate: Callable[[dict[str, Any]], None]) -> Path:
        config = json.loads(PROJECT_CONFIG.read_text())
        mutate(config)
        path = tmp_path / "cfg" / "config.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(config, indent=2))
        return path

    return write


def unchanged(config: dict[str, Any]) -> None:
    """A mutation that changes nothing."""


def check_json(capsys: pytest.CaptureFixture[str], config: Path) -> tuple[int, dict[str, Any]]:
    status = cli.main(["check", "--config", str(config), "--json"])
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return status, report


# -- check ------------------------------------------------------------------------


@pytest.mark.usefixtures("secrets_env")
def test_check_accepts_the_project_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", "--config", str(PROJECT_CONFIG)]) == 0
    assert capsys.readouterr().out == f"ok: {PROJECT_CONFIG}\n"


@pytest.mark.usefixtures("no_secrets_env")
def test_check_counts_the_dev_secrets_run_will_create(
    capsys: pytest.CaptureFixture[str], config_copy: Callable[..., Path]
) -> None:
    config = config_copy(unchanged)
    assert check_json(capsys, config) == (0, {"ok": True, "errors": []})
    assert not devsecrets.path_for(config.parent).exists()  # check creates nothing


@pytest.mark.usefixtures("secrets_env")
def test_check_names_the_path_of_an_unknown_grant_key(
    capsys: pytest.CaptureFixture[str], config_copy: Callable[..., Path]
) -> None:
    def mutate(config: dict[str, Any]) -> None:
        config["workers"][0]["components"][0]["extra"]["grants"]["anonymous"][0]["colour"] = 1

    status = cli.main(["check", "--config", str(config_copy(mutate))])
    err = capsys.readouterr().err
    assert status == 1
    assert "$.workers[0].components[0].extra.grants.anonymous[0].colour" in err
    assert "unknown key 'colour'" in err


@pytest.mark.usefixtures("no_secrets_env")
def test_check_names_the_path_of_an_unset_variable(
    capsys: pytest.CaptureFixture[str],
    config_copy: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BROKER_TEST_UNSET", raising=False)

    def mutate(config: dict[str, Any]) -> None:
        users = config["workers"][0]["transports"][0]["paths"]["ws"]["auth"]["wampcra"]["users"]
        users["backend"]["secret"] = "${BROKER_TEST_UNSET}"

    config = config_copy(mutate)
    devsecrets.path_for(config.parent).write_text("BROKER_BACKEND_SECRET=x\n")
    status, report = check_json(capsys, config)
    assert status == 1
    # the generated secrets the file lacks count as set: broker run adds them
    assert [(e["path"], e["message"]) for e in report["errors"]] == [
        (f"{USERS}.backend.secret", "environment variable BROKER_TEST_UNSET is not set"),
    ]


# -- run ----------------------------------------------------------------------------


class Execed(Exception):
    """Raised by the fake ``os.execv`` instead of replacing the process."""


@pytest.fixture
def fake_execv(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record ``os.execv`` calls instead of making them."""
    calls: list[list[str]] = []

    def execv(path: Any, argv: list[str]) -> None:
        calls.append(list(argv))
        raise Execed

    monkeypatch.setattr(os, "execv", execv)
    return calls


@pytest.mark.usefixtures("no_secrets_env")
def test_run_renders_the_config_and_becomes_crossbar(
    capsys: pytest.CaptureFixture[str],
    config_copy: Callable[..., Path],
    fake_execv: list[list[str]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("BROKER_PORT", "18999")
    config = config_copy(unchanged)
    with pytest.raises(Execed):
        cli.main(["run", "--config", str(config), "--host", "0.0.0.0"])
    cbdir = config.parent / "run"
    # crossbar's controller, through the launcher that forwards SIGHUP (broker.router.launcher)
    launcher = [sys.executable, "-m", "broker.router.launcher"]
    assert fake_execv == [[*launcher, "start", "--cbdir", str(cbdir), "--loglevel", "warn"]]
    # what a live reload re-reads and compares with
    assert os.environ["BROKER_CONFIG"] == str(config.absolute())
    assert (cbdir / "broker-source.json").exists()
    assert capsys.readouterr().out == (
        "Broker node starting: http://127.0.0.1:18999/  ws://127.0.0.1:18999/ws (realm app)\n"
    )
    endpoint = json.loads((cbdir / "config.json").read_text())["workers"][0]["transports"][0]
    assert (endpoint["endpoint"]["port"], endpoint["endpoint"]["interface"]) == (18999, "0.0.0.0")
    # the dev secrets were created and handed to crossbar through the environment
    dev = devsecrets.load(devsecrets.path_for(config.parent))
    assert all(os.environ[name] == dev[name] for name in SECRETS)


def test_run_refuses_an_invalid_config(
    capsys: pytest.CaptureFixture[str],
    config_copy: Callable[..., Path],
    fake_execv: list[list[str]],
) -> None:
    def mutate(config: dict[str, Any]) -> None:
        config["workers"][0]["components"][0]["extra"]["hello_timeout"] = 0

    assert cli.main(["run", "--config", str(config_copy(mutate))]) == 1
    err = capsys.readouterr().err
    assert err.startswith("broker: config error: $.workers[0].components[0].extra.hello_timeout")
    assert fake_execv == []


@pytest.mark.usefixtures("secrets_env")
def test_run_refuses_an_empty_secret_in_the_environment(
    capsys: pytest.CaptureFixture[str],
    config_copy: Callable[..., Path],
    fake_execv: list[list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = config_copy(unchanged)
    (config.parent / "secrets.env").write_text("BROKER_BACKEND_SECRET=from-file\n")
    monkeypatch.setenv("BROKER_BACKEND_SECRET", "")
    assert cli.main(["run", "--config", str(config)]) == 1
    assert capsys.readouterr().err == (
        "broker: config error: $.workers[0].transports[0].paths.ws.auth.wampcra.users.backend.secret: "
        "the environment variable BROKER_BACKEND_SECRET is empty: set it to the secret, or unset it to use "
        f"{config.parent / 'secrets.env'}\n"
    )
    assert fake_execv == []


@pytest.mark.usefixtures("secrets_env")
def test_run_never_renders_over_its_own_config(
    capsys: pytest.CaptureFixture[str],
    config_copy: Callable[..., Path],
    fake_execv: list[list[str]],
) -> None:
    config = config_copy(unchanged)
    before = config.read_text()
    assert cli.main(["run", "--config", str(config), "--cbdir", str(config.parent)]) == 1
    assert "the rendered config would replace" in capsys.readouterr().err
    assert config.read_text() == before
    assert fake_execv == []


@pytest.mark.usefixtures("secrets_env")
def test_run_refuses_a_second_node_on_the_same_cbdir(
    capsys: pytest.CaptureFixture[str],
    config_copy: Callable[..., Path],
    fake_execv: list[list[str]],
    tmp_path: Path,
) -> None:
    cbdir = tmp_path / "cbdir"
    cbdir.mkdir()
    # a live process whose command line says crossbar, as the controller's does
    code = "import time; print('up', flush=True); time.sleep(60)"
    sleeper = subprocess.Popen([sys.executable, "-c", code, "crossbar"], stdout=subprocess.PIPE)
    try:
        assert sleeper.stdout is not None
        sleeper.stdout.readline()  # its command line is its own from here on
        (cbdir / "node.pid").write_text(json.dumps({"pid": sleeper.pid}))
        args = ["run", "--config", str(config_copy(unchanged)), "--cbdir", str(cbdir)]
        assert cli.main(args) == 1
    finally:
        sleeper.kill()
        sleeper.wait()
    assert f"a node is already running from {cbdir} (PID {sleeper.pid})" in capsys.readouterr().err
    assert fake_execv == []
    # once that process is gone the pid file is stale: crossbar replaces it
    with pytest.raises(Execed):
        cli.main(args)


@pytest.mark.usefixtures("secrets_env")
def test_run_refuses_a_port_in_use_in_one_line(
    capsys: pytest.CaptureFixture[str],
    config_copy: Callable[..., Path],
    fake_execv: list[list[str]],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["run", "--config", str(config_copy(unchanged)), "--port", str(port)]) == 1
    out, err = capsys.readouterr()
    assert err == (
        f"broker: cannot listen on 127.0.0.1:{port}: [Errno 98] Address already in use: "
        "choose another port with --port N or BROKER_PORT=N\n"
    )
    assert out == ""  # not even "starting"
    assert fake_execv == []


def test_broker_run_refuses_another_autobahn_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    config_copy: Callable[..., Path],
    fake_execv: list[list[str]],
) -> None:
    real = versions._installed
    monkeypatch.setattr(versions, "_installed", lambda name: "26.10.2" if name == "autobahn" else real(name))
    assert cli.main(["run", "--config", str(config_copy(unchanged))]) == 1
    out, err = capsys.readouterr()
    assert err.startswith("broker: autobahn 26.10.2 is installed, but Broker's crossbar patches were written")
    assert err.count("\n") == 1
    assert out == ""  # not even "starting"
    assert fake_execv == []  # crossbar never ran


# -- publish / tail -------------------------------------------------------------------


def test_publish_rejects_invalid_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["publish", "public.demo", "{n: 1}"]) == 2
    assert capsys.readouterr().err.startswith("broker: invalid JSON payload: ")


def test_publish_rejects_an_invalid_topic(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["publish", "public..demo", "1"]) == 1
    assert capsys.readouterr().err.startswith(
        "broker: publish failed: wamp.error.invalid_uri: invalid topic 'public..demo'"
    )


def test_tail_rejects_an_invalid_pattern(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["tail", "public demo", "--match", "prefix"]) == 1
    assert "subscribe failed: wamp.error.invalid_uri: invalid pattern" in capsys.readouterr().err


@pytest.mark.usefixtures("no_secrets_env")
def test_publish_without_a_secret_says_where_to_get_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "config.json"
    assert cli.main(["publish", "public.demo", "1", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "no secret for 'backend': set BROKER_BACKEND_SECRET" in err
    assert str(tmp_path / "secrets.env") in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("count", ["0", "x"])
def test_tail_count_must_be_positive(count: str) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["tail", "public.demo", "--count", count])
    assert info.value.code == 2


@pytest.mark.usefixtures("secrets_env")
def test_publish_to_a_closed_port_fails_in_one_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"ws://127.0.0.1:{port}/ws"
    done = subprocess.run(
        [str(BROKER), "publish", "public.demo", "1", "--url", url],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (f"broker: cannot connect to {url}: connection refused (is the node running?)\n")


def test_importing_the_cli_loads_no_twisted() -> None:
    code = "import sys, broker.cli.main; print(sorted(m for m in sys.modules if m.split('.')[0] in "
    code += "('twisted', 'autobahn', 'crossbar')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "[]\n"


# -- token ------------------------------------------------------------------------------


def tokens_of(config: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = config["workers"][0]["components"][0]["extra"]["tokens"]
    return value


def mint_cli(config: Path, *args: str) -> int:
    return cli.main(["token", "42", "--config", str(config), *args])


@pytest.mark.usefixtures("secrets_env")
def test_token_refuses_an_unknown_match(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["token", "42", "--subscribe", "user.42.:regex"])
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.endswith(
        "broker token: error: argument --subscribe: unknown match 'regex' in 'user.42.:regex': write "
        "PATTERN[:MATCH] with MATCH one of exact, prefix, wildcard (an exact topic with a ':' of its "
        "own is written TOPIC:exact)\n"
    )


@pytest.mark.usefixtures("secrets_env")
def test_token_with_a_colon_in_an_exact_topic_names_its_match(
    capsys: pytest.CaptureFixture[str], config_copy: Callable[..., Path]
) -> None:
    import jwt

    assert mint_cli(config_copy(unchanged), "--subscribe", "user.42:inbox:exact") == 0
    token = capsys.readouterr().out.strip()
    claims = jwt.decode(token, "test-broker_token_secret", algorithms=["HS256"], audience="broker")
    assert claims["subscribe"] == [{"uri": "user.42:inbox", "match": "exact"}]


@pytest.mark.usefixtures("secrets_env")
@pytest.mark.parametrize(
    ("mutate", "args", "problem"),
    [
        (
            unchanged,
            ["--ttl", "999999999"],
            "--ttl 999999999 exceeds the tokens.max_ttl of the node ({config}), 3600 s: the node would "
            "refuse it (and a browser would reconnect with it forever)",
        ),
        (
            unchanged,
            ["--audience", "other"],
            "--audience 'other' is not the tokens.audience of the node ({config}), 'broker'",
        ),
        (
            lambda c: tokens_of(c)["keys"][0].update(secret="${BROKER_OTHER_TOKEN_SECRET}"),
            [],
            "the node ({config}) would refuse its signature: BROKER_TOKEN_SECRET is none of the HS256 "
            "keys in extra.tokens.keys",
        ),
        (
            lambda c: c["workers"][0]["components"][0]["extra"].pop("tokens"),
            [],
            "the node ({config}) accepts no tokens: its Broker component has no extra.tokens",
        ),
    ],
    ids=["ttl", "audience", "key", "no-tokens"],
)
def test_token_refuses_what_the_node_would_refuse(
    capsys: pytest.CaptureFixture[str],
    config_copy: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    mutate: Callable[[dict[str, Any]], None],
    args: list[str],
    problem: str,
) -> None:
    monkeypatch.setenv("BROKER_OTHER_TOKEN_SECRET", "not-the-cli-secret")
    config = config_copy(mutate)
    assert mint_cli(config, "--subscribe", "user.42.:prefix", *args) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"broker: token not minted: {problem.format(config=config)}\n"


@pytest.mark.usefixtures("secrets_env")
def test_token_takes_the_node_audience_and_max_ttl(
    capsys: pytest.CaptureFixture[str], config_copy: Callable[..., Path]
) -> None:
    import jwt

    def mutate(config: dict[str, Any]) -> None:
        tokens_of(config).update(audience="shop", max_ttl=600)

    config = config_copy(mutate)
    assert mint_cli(config, "--subscribe", "user.42.:prefix", "--ttl", "600") == 0
    out, err = capsys.readouterr()
    assert err == ""
    claims = jwt.decode(out.strip(), "test-broker_token_secret", algorithms=["HS256"], audience="shop")
    assert claims["exp"] - claims["iat"] == 600
    assert mint_cli(config, "--subscribe", "user.42.:prefix", "--ttl", "601") == 1
    assert "exceeds the tokens.max_ttl" in capsys.readouterr().err


@pytest.mark.usefixtures("secrets_env")
def test_a_token_without_grants_is_minted_with_a_warning(
    capsys: pytest.CaptureFixture[str], config_copy: Callable[..., Path]
) -> None:
    assert mint_cli(config_copy(unchanged)) == 0
    out, err = capsys.readouterr()
    assert out.count(".") == 2  # the token, a JWT
    assert err == (
        "broker: warning: this token grants no subscription (add --subscribe PATTERN[:MATCH]): "
        "it may subscribe only to what the node grants role 'user'\n"
    )


# -- --version, --help ----------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"broker {broker.__version__}\n"


def test_help_shows_examples_that_parse(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert out.endswith(cli.EXAMPLES)
    commands = [line.strip() for line in cli.EXAMPLES.splitlines() if line.startswith("  broker ")]
    assert len(commands) == 10
    for command in commands:
        for part in command.split(" && "):
            words = shlex.split(part.split("  ")[0])  # the text after two spaces describes it
            assert words[0] == "broker"
            cli._parser().parse_args(words[1:])  # exits 2 on a usage error


@pytest.mark.parametrize(
    ("argv", "program"),
    [
        (["pipe", "t", "--", "sh", "-c", "echo --url x"], ["sh", "-c", "echo --url x"]),
        (["pipe", "t", "--url", "ws://h/ws", "--grace", "1", "--", "ls", "-l"], ["ls", "-l"]),
        (["pipe", "t", "--", "broker", "pipe", "u", "--", "ls"], ["broker", "pipe", "u", "--", "ls"]),
    ],
)
def test_pipe_takes_everything_after_the_first_double_dash_as_the_program(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], program: list[str]
) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(cli, "cmd_pipe", lambda args: seen.append(args.program) or 0)
    assert cli.main(argv) == 0
    assert seen == [program]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["pipe", "t"], "broker: no command to run: broker pipe TOPIC -- COMMAND [ARGS...]"),
        (
            ["publish", "t"],
            "broker: nothing to publish: give JSON, or --lines to read events from standard input",
        ),
        (["publish", "t", "1", "--lines"], "broker: give either JSON or --lines, not both"),
    ],
)
def test_lines_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == message + "\n"
