"""``broker.contrib.django`` in a real Django project, publishing to a real node.

The test project (``tests/djangoproject``) keeps its sqlite databases in a
temporary directory; an anonymous WAMP subscriber (:mod:`tests.rawwamp`) sees
what reaches the node. Ordering proves what did *not* get published: a
rolled-back event would arrive before the sentinel published after it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import django
import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings

from broker.client import Forbidden
from broker.contrib.django import get_publisher, publish, publish_model_changes, publish_now
from broker.errors import InvalidUri
from tests.node import PUBLISHER_SECRET, ROOT, Node
from tests.rawwamp import EVENT, SUBSCRIBED, RawWamp

EXAMPLE = ROOT / "examples" / "django_orders"
ORDERS = "public.shop.orders."


@pytest.fixture(scope="module", autouse=True)
def django_project(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Set up the test project once, its tables created in a fresh temporary directory."""
    if settings.configured:
        return
    saved = {name: os.environ.get(name) for name in ("DJANGO_SETTINGS_MODULE", "BROKER_TEST_DJANGO_DIR")}
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.djangoproject.settings"
    os.environ["BROKER_TEST_DJANGO_DIR"] = str(tmp_path_factory.mktemp("django"))
    try:
        django.setup()
    finally:  # the settings are loaded now; leave the environment as it was
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    call_command("migrate", run_syncdb=True, verbosity=0)


def broker_settings(url: str, **changes: Any) -> override_settings:
    """``override_settings`` with a complete publisher configuration, changed by ``changes``."""
    values: dict[str, Any] = {"BROKER_URL": url, "BROKER_KEY_ID": "dev", "BROKER_SECRET": PUBLISHER_SECRET}
    values.update(changes)
    return override_settings(**values)


@pytest.fixture
def to_node(node: Node) -> Iterator[None]:
    """Publish to the shared node as the ``dev`` key."""
    with broker_settings(node.url):
        yield


@pytest.fixture
def subscriber(connect: Callable[..., RawWamp]) -> Callable[[str, str], RawWamp]:
    """An anonymous session subscribed to one topic or pattern."""

    def subscribe(topic: str, match: str = "exact") -> RawWamp:
        client = connect()
        reply = client.subscribe(topic, match=match)
        assert reply[0] == SUBSCRIBED, reply
        return client

    return subscribe


def next_event(client: RawWamp) -> tuple[str | None, list[Any]]:
    """The next event's topic (given for pattern subscriptions) and positional arguments."""
    msg = client.event()
    assert msg[0] == EVENT
    return msg[3].get("topic"), msg[4]


def order_data(order: Any) -> dict[str, Any]:
    """What the default serializer publishes for a test ``Order``: no ``created_at``."""
    return {
        "id": order.pk,
        "customer": order.customer,
        "item": order.item,
        "quantity": order.quantity,
        "status": order.status,
        "price": str(order.price),
    }


# -- settings (no node) ------------------------------------------------------------


@pytest.mark.parametrize("missing", ["BROKER_URL", "BROKER_KEY_ID", "BROKER_SECRET"])
def test_a_missing_setting_is_improperly_configured_and_named(missing: str) -> None:
    with broker_settings("http://127.0.0.1:9"):
        delattr(settings, missing)
        with pytest.raises(ImproperlyConfigured, match=f"^{missing} is not set"):
            get_publisher()
        # publish() raises before registering anything: the transaction rolls back
        with pytest.raises(ImproperlyConfigured, match=missing), transaction.atomic():
            publish("public.shop.x", {})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"BROKER_URL": "ws://127.0.0.1:8080/ws"}, "^BROKER_URL: url must be http:// or https://"),
        ({"BROKER_KEY_ID": "not a key"}, "^BROKER_KEY_ID: key_id must match"),
        ({"BROKER_SECRET": ""}, "BROKER_SECRET is not set"),
        ({"BROKER_KEY_ID": 7}, "BROKER_KEY_ID must be a string"),
        ({"BROKER_TIMEOUT": 0}, "BROKER_TIMEOUT must be a positive number"),
        ({"BROKER_TIMEOUT": "5"}, "BROKER_TIMEOUT must be a positive number"),
    ],
)
def test_invalid_settings_are_improperly_configured(changes: dict[str, Any], message: str) -> None:
    with broker_settings("http://127.0.0.1:9", **changes), pytest.raises(ImproperlyConfigured, match=message):
        get_publisher()


def test_one_publisher_per_process_rebuilt_when_settings_change() -> None:
    with broker_settings("http://127.0.0.1:9"):
        first = get_publisher()
        assert get_publisher() is first
        with override_settings(BROKER_TIMEOUT=2.5):
            assert get_publisher() is not first
    with broker_settings("http://127.0.0.1:9"):
        assert get_publisher() is not first


def test_publish_rejects_an_invalid_topic_or_non_json_data_before_the_commit() -> None:
    with broker_settings("http://127.0.0.1:9"), transaction.atomic():
        with pytest.raises(InvalidUri):
            publish("public.shop.not a topic", {})
        with pytest.raises(TypeError):
            publish("public.shop.x", {"when": object()})
        with pytest.raises(ValueError, match="not JSON compliant"):
            publish("public.shop.x", float("nan"))


# -- against a node --------------------------------------------------------------------


@pytest.mark.node
def test_a_committed_create_reaches_an_anonymous_subscriber(
    to_node: None, subscriber: Callable[..., RawWamp]
) -> None:
    from tests.djangoproject.shop.models import Order

    client = subscriber(ORDERS, "prefix")
    with transaction.atomic():
        order = Order.objects.create(customer="ada", item="tea", quantity=2, price=Decimal("12.50"))

    topic, args = next_event(client)
    assert topic == f"{ORDERS}{order.pk}"
    assert args == [{"event": "created", "pk": order.pk, "data": order_data(order)}]
    assert args[0]["data"]["price"] == "12.50"


@pytest.mark.node
def test_a_rolled_back_create_publishes_nothing(to_node: None, subscriber: Callable[..., RawWamp]) -> None:
    from tests.djangoproject.shop.models import Order

    client = subscriber(ORDERS, "prefix")
    with pytest.raises(RuntimeError, match="roll back"), transaction.atomic():
        Order.objects.create(customer="rolled back", item="coffee")
        raise RuntimeError("roll back")
    with transaction.atomic():
        sentinel = Order.objects.create(customer="sentinel", item="water")

    # sqlite may reuse the rolled-back row's pk: tell them apart by content
    topic, args = next_event(client)
    assert args[0]["data"]["customer"] == "sentinel"
    assert (topic, args[0]["event"], args[0]["pk"]) == (f"{ORDERS}{sentinel.pk}", "created", sentinel.pk)


@pytest.mark.node
def test_updates_and_deletes_are_published(to_node: None, subscriber: Callable[..., RawWamp]) -> None:
    from tests.djangoproject.shop.models import Order

    order = Order.objects.create(customer="grace", item="cake")
    client = subscriber(f"{ORDERS}{order.pk}")

    order.status = "paid"
    order.save()  # autocommit: published at once
    _, args = next_event(client)
    assert args == [{"event": "updated", "pk": order.pk, "data": order_data(order)}]
    assert args[0]["data"]["status"] == "paid"

    pk, data = order.pk, order_data(order)
    with transaction.atomic():
        order.delete()
    _, args = next_event(client)
    assert args == [{"event": "deleted", "pk": pk, "data": data}]


@pytest.mark.node
def test_connecting_again_does_not_double_publish_and_fixture_loads_are_skipped(
    to_node: None, subscriber: Callable[..., RawWamp]
) -> None:
    from django.db.models.signals import post_save

    from tests.djangoproject.shop.apps import TOPIC
    from tests.djangoproject.shop.models import Order

    publish_model_changes(Order, topic=TOPIC)  # as ready() already did
    client = subscriber(ORDERS, "prefix")
    order = Order.objects.create(customer="once", item="tea")
    post_save.send(sender=Order, instance=order, created=False, raw=True, using="default")
    publish_now(f"{ORDERS}sentinel", "sentinel")

    assert next_event(client)[1][0]["pk"] == order.pk
    assert next_event(client) == (f"{ORDERS}sentinel", ["sentinel"])


@pytest.mark.node
def test_publish_waits_for_the_commit_of_the_database_it_names(
    to_node: None, subscriber: Callable[..., RawWamp]
) -> None:
    prefix = f"public.shop.deferred.{uuid.uuid4().hex}."
    client = subscriber(prefix, "prefix")
    with transaction.atomic(using="other"):
        publish(f"{prefix}later", {"n": 1}, using="other")
        publish_now(f"{prefix}now", {"n": 2})
        publish(f"{prefix}default", {"n": 3})  # "default" is in autocommit: at once

    assert next_event(client) == (f"{prefix}now", [{"n": 2}])
    assert next_event(client) == (f"{prefix}default", [{"n": 3}])
    assert next_event(client) == (f"{prefix}later", [{"n": 1}])


@pytest.mark.node
def test_publish_now_raises_the_sdk_error_for_a_forbidden_topic(to_node: None) -> None:
    with pytest.raises(Forbidden) as refused:
        publish_now("broker.internal", {"x": 1})
    assert (refused.value.status, refused.value.error) == (403, "wamp.error.not_authorized")


@pytest.mark.node
def test_a_failed_publish_after_the_commit_is_logged_not_raised(
    to_node: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="broker"), transaction.atomic():
        publish("broker.internal", {"x": 1})
        assert not caplog.records  # nothing happens before the commit

    [record] = [r for r in caplog.records if r.name == "broker"]
    assert record.levelno == logging.ERROR
    assert "'broker.internal'" in record.getMessage()
    assert "committed but not published" in record.getMessage()


# -- the example project ---------------------------------------------------------------


def manage(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the example's ``manage.py`` as its README does, from the repository root."""
    return subprocess.run(
        [sys.executable, str(EXAMPLE / "manage.py"), *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_example_project_passes_django_checks(tmp_path: Path) -> None:
    result = manage("check", env={"ORDERS_DB": str(tmp_path / "orders.sqlite3")})
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_the_example_project_loads_no_crossbar_twisted_or_autobahn(tmp_path: Path) -> None:
    stack = "{'crossbar', 'twisted', 'autobahn'}"
    code = f"import sys; print(sorted({{m.split('.')[0] for m in sys.modules}} & {stack}))"
    result = manage(
        "shell", "--verbosity", "0", "--command", code, env={"ORDERS_DB": str(tmp_path / "o.sqlite3")}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_example_project_migrates_into_the_database_orders_db_names(tmp_path: Path) -> None:
    database = tmp_path / "orders.sqlite3"
    result = manage("migrate", "--no-input", env={"ORDERS_DB": str(database)})
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(database) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"orders_order", "auth_user", "django_session"} <= tables


@pytest.mark.node
def test_an_order_saved_in_the_example_project_reaches_the_dashboard(
    node: Node, tmp_path: Path, subscriber: Callable[..., RawWamp]
) -> None:
    env = {
        "ORDERS_DB": str(tmp_path / "orders.sqlite3"),
        "BROKER_URL": node.url,
        "BROKER_SECRET": PUBLISHER_SECRET,
    }
    assert manage("migrate", "--no-input", env=env).returncode == 0
    client = subscriber("public.orders.", "prefix")

    code = "from orders.models import Order; print(Order.objects.create(customer='ada', item='tea').pk)"
    result = manage("shell", "--verbosity", "0", "--command", code, env=env)
    assert result.returncode == 0, result.stderr
    pk = int(result.stdout)

    topic, args = next_event(client)
    assert topic == f"public.orders.{pk}"
    assert args[0]["event"] == "created"
    assert args[0]["data"]["customer"] == "ada"
    assert args[0]["data"]["status"] == "new"
    assert {"created_at", "updated_at"} <= set(args[0]["data"])
