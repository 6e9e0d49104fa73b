"""Per-user tokens against a real node: WAMP ticket auth, per-session grants, recovery, the CLI.

The shared node runs the project's config, which verifies HS256 tokens signed
with ``BROKER_TOKEN_SECRET`` (:data:`tests.node.TOKEN_SECRET`).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from broker.core.tokens import mint
from tests.node import BACKEND_SECRET, BROKER, PROJECT_CONFIG, TOKEN_SECRET, Node
from tests.rawwamp import (
    ABORT,
    AUTHENTICATE,
    CHALLENGE,
    ERROR,
    GOODBYE,
    HELLO,
    PUBLISHED,
    RESULT,
    SUBSCRIBED,
    WELCOME,
    RawWamp,
)
from tests.test_longpoll import ROLES as LONG_POLL_ROLES
from tests.test_longpoll import LongPoll

pytestmark = [pytest.mark.node, pytest.mark.filterwarnings("ignore:The HMAC key is:UserWarning")]

NOT_AUTHORIZED = "wamp.error.not_authorized"


def token_for(user: int, ttl: int = 300, **kwargs: Any) -> str:
    """A token for ``user`` that may subscribe under ``user.<id>.``."""
    return mint(TOKEN_SECRET, str(user), [{"uri": f"user.{user}.", "match": "prefix"}], ttl=ttl, **kwargs)


@pytest.fixture
def join(node: Node) -> Iterator[Callable[[str], RawWamp]]:
    """Join the shared node with a token; every session is closed afterwards."""
    opened: list[RawWamp] = []

    def open_(token: str) -> RawWamp:
        client = RawWamp(node.ws_url, origin=node.origin)
        opened.append(client)
        welcome = client.hello(ticket=token)
        assert welcome[0] == WELCOME, welcome
        assert welcome[2]["authrole"] == "user"
        return client

    yield open_
    for client in opened:
        client.close()


def refusal(node: Node, token: str) -> list[Any]:
    client = RawWamp(node.ws_url, origin=node.origin)
    try:
        return client.hello(ticket=token)
    finally:
        client.close()


def recover(client: RawWamp, topic: str, match: str, epoch: str, after: int) -> list[Any]:
    return client.call("broker.recover", [topic], {"match": match, "epoch": epoch, "after": after})


def test_a_user_subscribes_to_own_topics_and_receives_events(
    join: Callable[[str], RawWamp], connect: Callable[..., RawWamp]
) -> None:
    user = join(token_for(42))
    topic = f"user.42.inbox.{uuid.uuid4().hex[:8]}"
    assert user.subscribe(topic)[0] == SUBSCRIBED
    assert user.subscribe("user.42.", "prefix")[0] == SUBSCRIBED
    backend = connect("backend")
    assert backend.publish(topic, [{"hello": 42}])[0] == PUBLISHED  # type: ignore[index]
    for _ in range(2):  # once for each subscription
        event = user.event()
        assert event[4] == [{"hello": 42}]


@pytest.mark.parametrize(
    ("topic", "match"),
    [
        ("user.43.inbox", "exact"),
        ("user.4", "prefix"),  # would deliver user.43.*
        ("user..inbox", "wildcard"),
        ("public.news", "exact"),  # the token grants no public topics
        ("wamp.session.on_join", "exact"),
        ("", "prefix"),
    ],
)
def test_a_user_cannot_subscribe_beyond_the_token(
    join: Callable[[str], RawWamp], topic: str, match: str
) -> None:
    reply = join(token_for(42)).subscribe(topic, match)
    assert reply[:5] == [ERROR, 32, 1, {}, NOT_AUTHORIZED]


def test_a_user_may_not_publish_or_call_meta_procedures(join: Callable[[str], RawWamp]) -> None:
    user = join(token_for(42))
    assert user.publish("user.42.inbox", [1])[:5] == [ERROR, 16, 1, {}, NOT_AUTHORIZED]  # type: ignore[index]
    assert user.call("wamp.session.count")[:5] == [ERROR, 48, 2, {}, NOT_AUTHORIZED]


def test_grants_never_leak_to_another_users_session(join: Callable[[str], RawWamp]) -> None:
    """Crossbar caches authorizations per role: a cached "yes" for user 42 would reach user 43."""
    topic = f"user.42.{uuid.uuid4().hex[:8]}"
    for _ in range(2):  # allowed twice for its owner (a cache would now answer) ...
        assert join(token_for(42)).subscribe(topic)[0] == SUBSCRIBED
    other = join(token_for(43))
    for _ in range(2):  # ... and still refused for another user, on a new and the same session
        assert other.subscribe(topic)[4] == NOT_AUTHORIZED
    # and the other way round: a refusal for 43 is not served to 42
    mine = f"user.43.{uuid.uuid4().hex[:8]}"
    assert join(token_for(42)).subscribe(mine)[4] == NOT_AUTHORIZED
    assert other.subscribe(mine)[0] == SUBSCRIBED


def test_the_token_names_the_user_whatever_hello_claims(node: Node) -> None:
    client = RawWamp(node.ws_url, origin=node.origin)
    try:
        welcome = client.hello(authid="backend", ticket=token_for(42))
        assert welcome[0] == WELCOME
        assert (welcome[2]["authid"], welcome[2]["authrole"]) == ("42", "user")
        assert welcome[2]["authextra"]["subscribe"] == [{"uri": "user.42.", "match": "prefix"}]
        assert client.publish("orders.created", [1])[4] == NOT_AUTHORIZED  # type: ignore[index]
    finally:
        client.close()


@pytest.mark.parametrize(
    ("make_token", "message"),
    [
        (lambda: token_for(42, ttl=60, now=1_000_000_000), "token expired at 2001-09-09T01:47:40Z"),
        (lambda: mint("not-the-secret", "42", []), "token signature is invalid"),
        (
            lambda: mint(TOKEN_SECRET, "42", [], audience="billing"),
            "token audience 'billing' is not 'broker'",
        ),
        (lambda: token_for(42, ttl=7200), "token lifetime 7200 s exceeds this node's max_ttl of 3600 s"),
        (
            lambda: jwt.encode(
                {"aud": "broker", "iat": int(time.time()), "exp": int(time.time()) + 60}, TOKEN_SECRET
            ),
            "token has no 'sub'",
        ),
    ],
)
def test_bad_tokens_are_aborted_with_the_reason(
    node: Node, make_token: Callable[[], str], message: str
) -> None:
    assert refusal(node, make_token()) == [ABORT, {"message": message}, NOT_AUTHORIZED]


def test_a_malformed_token_is_aborted(node: Node) -> None:
    reply = refusal(node, "not.a.token")
    assert (reply[0], reply[2]) == (ABORT, NOT_AUTHORIZED)
    assert reply[1]["message"].startswith("token is malformed: ")  # then pyjwt's words


def test_recovery_checks_the_callers_own_token(
    join: Callable[[str], RawWamp], connect: Callable[..., RawWamp]
) -> None:
    topic = f"user.42.feed.{uuid.uuid4().hex[:8]}"
    watcher = connect("backend")
    assert watcher.subscribe(topic)[0] == SUBSCRIBED
    backend = connect("backend")
    for n in range(3):
        assert backend.publish(topic, [n])[0] == PUBLISHED  # type: ignore[index]
    first = watcher.event()[5]["broker_position"]
    for _ in range(2):
        watcher.event()

    owner = recover(join(token_for(42)), "user.42.", "prefix", first["epoch"], first["cursor"])
    assert owner[0] == RESULT, owner
    answer = owner[3][0]
    assert [e["args"] for e in answer["events"] if e["topic"] == topic] == [[1], [2]]

    stranger = recover(join(token_for(43)), "user.42.", "prefix", first["epoch"], first["cursor"])
    assert stranger[0] == ERROR
    assert stranger[4] == NOT_AUTHORIZED
    assert "user '43' may not subscribe to 'user.42.' (prefix)" in stranger[5][0]


# -- a session ends with its token ------------------------------------------------------

LEEWAY = 1


def short_leeway(config: dict[str, Any]) -> None:
    config["workers"][0]["components"][0]["extra"]["tokens"]["leeway"] = LEEWAY


def expiring_token(user: int) -> tuple[str, float]:
    """A token for ``user`` that lives 2 s, and its ``exp``."""
    token = token_for(user, ttl=2)
    return token, float(jwt.decode(token, options={"verify_signature": False})["exp"])


def subscribed(node: Node, topic: str, match: str = "exact", **hello: Any) -> RawWamp:
    client = RawWamp(node.ws_url, origin=node.origin)
    assert client.hello(**hello)[0] == WELCOME
    assert client.subscribe(topic, match)[0] == SUBSCRIBED
    return client


def assert_token_expired(goodbye: list[Any], exp: float, received_at: float) -> None:
    expired = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp))
    assert goodbye == [
        GOODBYE,
        {
            "message": f"token expired at {expired} (this node allows {LEEWAY} s of leeway): "
            "sign in again with a fresh token"
        },
        "broker.error.token_expired",
    ]
    # not before exp + leeway (the node's clock is this machine's), and not long after
    assert exp + LEEWAY <= received_at <= exp + LEEWAY + 2


def test_a_session_is_ended_when_its_token_expires(make_node: Callable[..., Node]) -> None:
    """Crossbar checks a ticket once: a session outlived its token by as long as it liked."""
    node = make_node(short_leeway)
    token, exp = expiring_token(42)
    user = subscribed(node, "user.42.", "prefix", ticket=token)
    other = subscribed(node, "user.43.", "prefix", ticket=token_for(43))  # a token of 300 s
    anonymous = subscribed(node, "public.canary")
    goodbye = user.recv(timeout=10)
    assert_token_expired(goodbye, exp, time.time())
    # the transport closes after the GOODBYE whether or not the client answers it
    assert user.wait_closed(timeout=5).code == 1000
    assert user.received_before_close == []
    publisher = subscribed(node, "public.canary", authid="backend", secret=BACKEND_SECRET)
    for topic in ("user.42.inbox", "user.43.inbox", "public.canary"):
        assert publisher.publish(topic, [topic])[0] == PUBLISHED  # type: ignore[index]
    assert other.event()[4] == ["user.43.inbox"]  # the bystanders keep receiving
    assert anonymous.event()[4] == ["public.canary"]
    assert node.rejections().get("TokenExpired") == 1
    assert "Traceback" not in node.log()
    for client in (other, anonymous, publisher):
        client.close()


def test_a_long_poll_session_is_ended_when_its_token_expires(make_node: Callable[..., Node]) -> None:
    node = make_node(short_leeway)
    token, exp = expiring_token(42)
    client = LongPoll(node)
    client.send([HELLO, "app", {"roles": LONG_POLL_ROLES, "authmethods": ["ticket"]}])
    assert client.recv()[0] == CHALLENGE
    client.send([AUTHENTICATE, token, {}])
    assert client.recv()[0] == WELCOME
    assert client.subscribe("user.42.inbox")[0] == SUBSCRIBED
    goodbye = client.recv()  # the poll waits for it
    assert_token_expired(goodbye, exp, time.time())
    publisher = subscribed(node, "public.canary", authid="backend", secret=BACKEND_SECRET)
    assert publisher.publish("user.42.inbox", [1])[0] == PUBLISHED  # type: ignore[index]
    assert client.receive().status == 404  # the transport went with the GOODBYE, the event never queued
    publisher.close()
    assert "Traceback" not in node.log()


# -- broker token ------------------------------------------------------------------


def run_broker(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "BROKER_TOKEN_SECRET"} | env
    return subprocess.run(
        [str(BROKER), *args], capture_output=True, text=True, timeout=30, env=full, cwd=cwd, check=False
    )


def test_the_token_command_mints_a_token_the_node_accepts(node: Node, join: Callable[[str], RawWamp]) -> None:
    done = run_broker(
        "token",
        "42",
        "--subscribe",
        "user.42.:prefix",
        "--subscribe",
        "public.news",
        "--ttl",
        "120",
        "--config",
        str(PROJECT_CONFIG),
        env={"BROKER_TOKEN_SECRET": TOKEN_SECRET},
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    claims = jwt.decode(token, TOKEN_SECRET, algorithms=["HS256"], audience="broker")
    assert claims["exp"] - claims["iat"] == 120
    assert claims["subscribe"] == [
        {"uri": "user.42.", "match": "prefix"},
        {"uri": "public.news", "match": "exact"},
    ]
    user = join(token)
    assert user.subscribe("user.42.x")[0] == SUBSCRIBED
    assert user.subscribe("public.news")[0] == SUBSCRIBED
    assert user.subscribe("public.other")[4] == NOT_AUTHORIZED


def test_the_token_command_reads_the_dev_secrets_file(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(PROJECT_CONFIG.read_text())
    (tmp_path / "secrets.env").write_text("BROKER_TOKEN_SECRET=from-the-file\n")
    done = run_broker("token", "7", "--config", str(config), env={})
    assert done.returncode == 0, done.stderr
    assert (
        jwt.decode(done.stdout.strip(), "from-the-file", algorithms=["HS256"], audience="broker")["sub"]
        == "7"
    )


def test_the_token_command_explains_what_is_missing(tmp_path: Path) -> None:
    done = run_broker("token", "7", "--config", str(tmp_path / "config.json"), env={})
    assert done.returncode == 1
    assert done.stderr.startswith("broker: no token secret: set BROKER_TOKEN_SECRET")
    bad = run_broker(
        "token",
        "7",
        "--subscribe",
        "wamp.:prefix",
        "--config",
        str(tmp_path / "c.json"),
        env={"BROKER_TOKEN_SECRET": "s"},
    )
    assert bad.returncode == 1
    assert "reserved namespace" in bad.stderr
    usage = run_broker("token", "7", "--subscribe", "a b", env={"BROKER_TOKEN_SECRET": "s"})
    assert usage.returncode == 2
    assert "invalid pattern 'a b'" in usage.stderr


def test_backend_still_authenticates_with_wampcra(node: Node) -> None:
    client = RawWamp(node.ws_url, origin=node.origin)
    try:
        assert client.hello(authid="backend", secret=BACKEND_SECRET)[2]["authrole"] == "backend"
    finally:
        client.close()
