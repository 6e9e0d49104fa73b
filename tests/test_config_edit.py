"""``broker config``: the house-style formatter, the pure edits, the atomic writer, the command."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from broker.config import atomicfile, configedit, configfile, devsecrets
from broker.errors import ConfigError
from tests.node import BROKER, PROJECT_CONFIG

EXTRA = "$.workers[0].components[0].extra"


def project() -> dict[str, Any]:
    config: dict[str, Any] = json.loads(PROJECT_CONFIG.read_text())
    return config


def extra(config: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = config["workers"][0]["components"][0]["extra"]
    return value


# -- the formatter and the writer --------------------------------------------------


def test_formatting_the_project_config_reproduces_it_byte_for_byte() -> None:
    text = PROJECT_CONFIG.read_text()
    assert configfile.format_config(json.loads(text)) == text


def test_an_edit_changes_only_its_own_lines() -> None:
    text = PROJECT_CONFIG.read_text()
    edited = configedit.grant(json.loads(text), "anonymous", "orders.", "prefix", ["subscribe"])
    new = configfile.format_config(edited.config).splitlines()
    old = text.splitlines()
    assert len(new) == len(old) + 1
    added = [line for line in new if line not in old]
    assert [line.strip() for line in added] == [
        '{"uri": "orders.", "match": "prefix", "allow": ["subscribe"]}',
    ]


def test_formatting_is_stable() -> None:
    config = configedit.add_publisher(project(), "ci", [("orders.", "prefix")], (10.0, 20)).config
    once = configfile.format_config(config)
    assert configfile.format_config(json.loads(once)) == once
    assert json.loads(once) == config


def test_write_replaces_atomically_and_keeps_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "config.json"
    target.write_text("old\n")
    target.chmod(0o640)
    configfile.write(target, "new\n")
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temporary file left


def test_devsecrets_update_sets_replaces_and_removes(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text("# dev\nA=1\nB=2\n")
    devsecrets.update(path, {"A": "10", "C": "3", "B": None})
    assert path.read_text() == "# dev\nA=10\nC=3\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# -- the pure edits ----------------------------------------------------------------


def test_edits_never_change_their_input() -> None:
    config = project()
    before = json.dumps(config)
    configedit.grant(config, "anonymous", "orders.", "prefix", ["subscribe"])
    configedit.add_publisher(config, "ci", [("orders.", "prefix")])
    configedit.set_history_policy(config, "orders.", "prefix", 10, 60)
    assert json.dumps(config) == before


def test_add_publisher_references_its_own_secret_variable() -> None:
    edited = configedit.add_publisher(project(), "ci-2", [("orders.", "prefix")], (5.0, 10))
    assert edited.secret_var == "BROKER_PUBLISHER_CI_2_SECRET"
    assert extra(edited.config)["publishers"]["ci-2"] == {
        "secret": "${BROKER_PUBLISHER_CI_2_SECRET}",
        "topics": [{"uri": "orders.", "match": "prefix"}],
        "rate_limit": {"per_second": 5.0, "burst": 10},
    }


@pytest.mark.parametrize(
    ("key", "topics", "path"),
    [
        ("dev", [("orders.", "prefix")], f"{EXTRA}.publishers.dev"),
        ("ci", [("a b", "exact")], f"{EXTRA}.publishers.ci.topics[0].uri"),
        ("ci", [], f"{EXTRA}.publishers.ci.topics"),
        ("ci", [("orders.", "prefix"), ("wamp.", "prefix")], f"{EXTRA}.publishers.ci.topics[1]"),
        ("broker", [("broker.x", "exact")], f"{EXTRA}.publishers.broker.topics[0]"),
    ],
)
def test_add_publisher_refusals_name_the_path(key: str, topics: list[tuple[str, str]], path: str) -> None:
    with pytest.raises(ConfigError) as error:
        configedit.add_publisher(project(), key, topics)
    assert error.value.path == path


def test_two_key_ids_cannot_share_a_secret_variable() -> None:
    config = configedit.add_publisher(project(), "a.b", [("orders.", "prefix")]).config
    with pytest.raises(ConfigError) as error:
        configedit.add_publisher(config, "a_b", [("orders.", "prefix")])
    assert error.value.path == f'{EXTRA}.publishers["a.b"].secret'


def test_remove_and_rotate_publisher() -> None:
    removed = configedit.remove_publisher(project(), "dev")
    assert "dev" not in extra(removed.config)["publishers"]
    assert removed.secret_var == "BROKER_PUBLISHER_SECRET"
    rotated = configedit.rotate_publisher(project(), "dev")
    assert rotated.config == project()
    assert rotated.secret_var == "BROKER_PUBLISHER_SECRET"
    with pytest.raises(ConfigError) as error:
        configedit.rotate_publisher(project(), "nope")
    assert error.value.path == f"{EXTRA}.publishers.nope"


def test_grant_merges_into_a_grant_on_the_same_pattern() -> None:
    edited = configedit.grant(project(), "anonymous", "public.", "prefix", ["publish"])
    assert extra(edited.config)["grants"]["anonymous"][0]["allow"] == ["publish", "subscribe"]
    again = configedit.grant(edited.config, "anonymous", "public.", "prefix", ["subscribe"])
    assert again.config == edited.config
    assert again.summary.startswith("unchanged")


def test_grant_to_a_new_role_creates_its_list() -> None:
    edited = configedit.grant(project(), "auditor", "audit.", "prefix", ["subscribe", "call"])
    assert extra(edited.config)["grants"]["auditor"] == [
        {"uri": "audit.", "match": "prefix", "allow": ["subscribe", "call"]}
    ]


@pytest.mark.parametrize(
    ("uri", "match", "actions", "path"),
    [
        ("a..b", "prefix", ["subscribe"], f"{EXTRA}.grants.anonymous[2].uri"),
        ("orders.", "fuzzy", ["subscribe"], f"{EXTRA}.grants.anonymous[2].match"),
        ("orders.", "prefix", ["read"], f"{EXTRA}.grants.anonymous[2].allow"),
    ],
)
def test_grant_refusals_name_the_path(uri: str, match: str, actions: list[str], path: str) -> None:
    with pytest.raises(ConfigError) as error:
        configedit.grant(project(), "anonymous", uri, match, actions)
    assert error.value.path == path


@pytest.mark.parametrize(
    ("role", "uri", "match", "actions", "path", "message"),
    [
        (
            "anonymous",
            "wamp.session.",
            "prefix",
            ["subscribe"],
            f"{EXTRA}.grants.anonymous[2]",
            "a prefix grant",
        ),
        (
            "anonymous",
            "wamp.session.on_join",
            "exact",
            ["subscribe"],
            f"{EXTRA}.grants.anonymous[2]",
            "role 'anonymous'",
        ),
        ("user", "broker.", "prefix", ["call"], f"{EXTRA}.grants.user[2]", "a prefix grant"),
        # merged into the existing broker.recover grant: the merged actions are checked
        (
            "anonymous",
            "broker.recover",
            "exact",
            ["subscribe"],
            f"{EXTRA}.grants.anonymous[1]",
            "role 'anonymous'",
        ),
        (
            "operator",
            "wamp.session.list",
            "exact",
            ["register"],
            f"{EXTRA}.grants.operator[2]",
            "register on",
        ),
    ],
)
def test_a_grant_into_the_reserved_namespaces_is_refused(
    role: str, uri: str, match: str, actions: list[str], path: str, message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        configedit.grant(project(), role, uri, match, actions)
    assert error.value.path == path
    assert error.value.message.startswith(message)


def test_the_reserved_grants_the_rule_allows_are_granted() -> None:
    edited = configedit.grant(project(), "operator", "wamp.registration.list", "exact", ["call"])
    assert extra(edited.config)["grants"]["operator"][-1] == {
        "uri": "wamp.registration.list",
        "match": "exact",
        "allow": ["call"],
    }
    edited = configedit.grant(project(), "auditor", "broker.recover", "exact", ["call"])
    assert extra(edited.config)["grants"]["auditor"] == [
        {"uri": "broker.recover", "match": "exact", "allow": ["call"]}
    ]


def test_revoke_some_actions_or_the_whole_grant() -> None:
    config = configedit.grant(project(), "anonymous", "orders.", "prefix", ["subscribe", "call"]).config
    some = configedit.revoke(config, "anonymous", "orders.", "prefix", ["call"])
    assert extra(some.config)["grants"]["anonymous"][2]["allow"] == ["subscribe"]
    whole = configedit.revoke(config, "anonymous", "orders.", "prefix")
    assert extra(whole.config)["grants"]["anonymous"] == extra(project())["grants"]["anonymous"]
    with pytest.raises(ConfigError) as error:
        configedit.revoke(project(), "anonymous", "orders.", "prefix")
    assert error.value.path == f"{EXTRA}.grants.anonymous"


def test_a_new_history_policy_goes_before_the_one_that_would_shadow_it() -> None:
    edited = configedit.set_history_policy(project(), "orders.", "prefix", 10, 60)
    policies = extra(edited.config)["history"]["policies"]
    assert [p["uri"] for p in policies] == ["orders.", ""]
    narrower = configedit.set_history_policy(edited.config, "orders.big.", "prefix", 5, 60)
    assert [p["uri"] for p in extra(narrower.config)["history"]["policies"]] == ["orders.big.", "orders.", ""]
    replaced = configedit.set_history_policy(edited.config, "orders.", "prefix", 99, 60)
    assert extra(replaced.config)["history"]["policies"][0]["max_events"] == 99
    removed = configedit.remove_history_policy(edited.config, "orders.", "prefix")
    assert extra(removed.config)["history"]["policies"] == extra(project())["history"]["policies"]
    with pytest.raises(ConfigError) as error:
        configedit.remove_history_policy(project(), "orders.", "prefix")
    assert error.value.path == f"{EXTRA}.history.policies"


# -- the command (validated with broker.cli.main.check_config, which runs crossbar check) ---------


@pytest.fixture
def config_copy(tmp_path: Path) -> Path:
    """The project config in a directory of its own, paths still pointing at the project."""
    target = tmp_path / "config.json"
    config = project()
    paths = config["workers"][0]["transports"][0]["paths"]
    paths["/"]["directory"] = str((PROJECT_CONFIG.parent / paths["/"]["directory"]).resolve())
    target.write_text(configfile.format_config(config))
    return target


def broker(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    return subprocess.run(
        [str(BROKER), *args, "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        cwd=config.parent,
        timeout=120,
        check=False,
    )


def test_add_publisher_stores_the_secret_and_prints_what_the_backend_needs(config_copy: Path) -> None:
    done = broker(
        "config", "add-publisher", "ci", "--topic", "orders.", "--match", "prefix", config=config_copy
    )
    assert done.returncode == 0, done.stderr
    assert "deprecated" not in done.stderr
    printed = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert printed["key_id"] == "ci"
    secrets = devsecrets.load(config_copy.parent / "secrets.env")
    assert secrets["BROKER_PUBLISHER_CI_SECRET"] == printed["secret"]
    config = json.loads(config_copy.read_text())
    assert extra(config)["publishers"]["ci"]["secret"] == "${BROKER_PUBLISHER_CI_SECRET}"
    assert configfile.format_config(config) == config_copy.read_text()

    rotated = broker("config", "rotate-publisher", "ci", config=config_copy)
    assert rotated.returncode == 0, rotated.stderr
    new_secret = dict(line.split("=", 1) for line in rotated.stdout.splitlines())["secret"]
    assert new_secret != printed["secret"]
    assert devsecrets.load(config_copy.parent / "secrets.env")["BROKER_PUBLISHER_CI_SECRET"] == new_secret


def test_add_publisher_takes_match_like_grant_and_set_history(config_copy: Path) -> None:
    done = broker(
        "config",
        "add-publisher",
        "ci",
        "--topic",
        "orders.",
        "--topic",
        "invoices.",
        "--match",
        "prefix",
        config=config_copy,
    )
    assert done.returncode == 0, done.stderr
    assert extra(json.loads(config_copy.read_text()))["publishers"]["ci"]["topics"] == [
        {"uri": "orders.", "match": "prefix"},
        {"uri": "invoices.", "match": "prefix"},
    ]
    exact = broker("config", "add-publisher", "one", "--topic", "orders.new", config=config_copy)
    assert exact.returncode == 0, exact.stderr
    assert extra(json.loads(config_copy.read_text()))["publishers"]["one"]["topics"] == [
        {"uri": "orders.new", "match": "exact"}
    ]


def test_add_publisher_without_match_prefix_says_how(config_copy: Path) -> None:
    before = config_copy.read_bytes()
    done = broker("config", "add-publisher", "ci", "--topic", "orders.", config=config_copy)
    assert done.returncode == 1
    assert done.stderr == (
        f"broker: config error: {EXTRA}.publishers.ci.topics[0].uri: invalid pattern 'orders.': URI "
        "components must be non-empty and contain no whitespace, '.' or '#' (for every topic starting "
        "with 'orders.', match prefix: --match prefix)\n"
    )
    assert config_copy.read_bytes() == before


def test_the_old_match_suffix_still_works_with_a_deprecation_note(config_copy: Path) -> None:
    done = broker("config", "add-publisher", "ci", "--topic", "orders.:prefix", config=config_copy)
    assert done.returncode == 0, done.stderr
    assert (
        "broker: note: --topic 'orders.:prefix' is deprecated: write --topic orders. --match prefix\n"
        in done.stderr
    )
    assert extra(json.loads(config_copy.read_text()))["publishers"]["ci"]["topics"] == [
        {"uri": "orders.", "match": "prefix"}
    ]
    before = config_copy.read_bytes()
    both = broker(
        "config", "add-publisher", "cd", "--topic", "a.:prefix", "--match", "exact", config=config_copy
    )
    assert both.returncode == 2
    assert both.stderr == "broker: --topic 'a.:prefix' and --match exact: give the match once, with --match\n"
    assert config_copy.read_bytes() == before


def test_an_edit_of_an_invalid_file_is_refused_and_the_file_left_alone(config_copy: Path) -> None:
    config = json.loads(config_copy.read_text())
    extra(config)["slow_subscriber"]["max_buffer_bytes"] = 12  # hand-edited, below the minimum
    config_copy.write_text(json.dumps(config, indent=2))
    before = config_copy.read_bytes()
    done = broker(
        "config",
        "grant",
        "anonymous",
        "orders.",
        "--match",
        "prefix",
        "--allow",
        "subscribe",
        config=config_copy,
    )
    assert done.returncode == 1
    assert f"{EXTRA}.slow_subscriber.max_buffer_bytes" in done.stderr
    assert config_copy.read_bytes() == before
    assert sorted(p.name for p in config_copy.parent.iterdir()) == ["config.json"]


def test_a_refused_edit_names_the_path(config_copy: Path) -> None:
    before = config_copy.read_bytes()
    done = broker("config", "revoke", "anonymous", "orders.", "--match", "prefix", config=config_copy)
    assert done.returncode == 1
    assert f"{EXTRA}.grants.anonymous" in done.stderr
    assert config_copy.read_bytes() == before
    shutil.rmtree(config_copy.parent / "run", ignore_errors=True)


def test_the_cli_refuses_a_grant_of_session_meta_events_to_anonymous(config_copy: Path) -> None:
    before = config_copy.read_bytes()
    done = broker(
        "config",
        "grant",
        "anonymous",
        "wamp.session.",
        "--match",
        "prefix",
        "--allow",
        "subscribe",
        config=config_copy,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        f"broker: config error: {EXTRA}.grants.anonymous[2]: a prefix grant on 'wamp.session.' would "
        "cover every name under it: the wamp. and broker. namespaces are reserved for the node; "
        "grant exact URIs\n"
    )
    assert config_copy.read_bytes() == before


def _grant_argv(pattern: str, config: Path) -> list[str]:
    edit = ["config", "grant", "anonymous", pattern, "--allow", "subscribe"]
    return [str(BROKER), *edit, "--config", str(config)]


def test_concurrent_edits_take_turns_and_all_land(config_copy: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    patterns = [f"team{i}.feed" for i in range(6)]
    procs = [
        subprocess.Popen(_grant_argv(p, config_copy), cwd=config_copy.parent, env=env, stderr=subprocess.PIPE)
        for p in patterns
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else b""
        if proc.stderr:
            proc.stderr.close()
    granted = {g["uri"] for g in extra(json.loads(config_copy.read_text()))["grants"]["anonymous"]}
    assert set(patterns) <= granted


def _waiting_for_a_lock(pid: int) -> bool:
    """Whether ``pid`` is blocked on a ``flock`` (a ``->`` line of /proc/locks)."""
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and fields[fields.index("->") + 1] == "FLOCK" and str(pid) in fields:
            return True
    return False


def test_an_edit_waits_while_another_holds_the_config_directory(config_copy: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    with atomicfile.edit_lock(config_copy.parent):
        proc = subprocess.Popen(_grant_argv("held.feed", config_copy), cwd=config_copy.parent, env=env)
        deadline = time.monotonic() + 60
        while not _waiting_for_a_lock(proc.pid):
            assert proc.poll() is None, "the edit finished while another held the lock"
            assert time.monotonic() < deadline, "the edit never waited for the lock"
            time.sleep(0.05)
        assert "held.feed" not in config_copy.read_text()
    assert proc.wait(timeout=120) == 0
    assert "held.feed" in config_copy.read_text()
