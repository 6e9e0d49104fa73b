"""URI rules: what the router accepts as a topic, prefix or wildcard pattern."""

import pytest

from broker.core.uris import check_uri, is_reserved, is_valid_uri, topic_matches
from broker.errors import InvalidUri


@pytest.mark.parametrize(
    ("uri", "match", "valid"),
    [
        ("public.demo", "exact", True),
        ("orders.Created-2", "exact", True),
        ("a", "exact", True),
        ("a b", "exact", False),
        ("a#b", "exact", False),
        ("a..b", "exact", False),
        ("a.", "exact", False),
        (".a", "exact", False),
        ("", "exact", False),
        ("user.42.", "prefix", True),
        ("", "prefix", True),
        ("user..42", "prefix", False),
        ("user 42.", "prefix", False),
        ("orders..created", "wildcard", True),
        (".created", "wildcard", True),
        ("a#.b", "wildcard", False),
        ("a b..c", "wildcard", False),
    ],
)
def test_uri_rules(uri: str, match: str, valid: bool) -> None:
    assert is_valid_uri(uri, match) is valid


@pytest.mark.parametrize("uri", [12345, None, ["a"], b"a.b"])
def test_non_string_uri_names_its_type(uri: object) -> None:
    with pytest.raises(InvalidUri, match="a URI must be a string"):
        check_uri(uri)


def test_error_names_what_and_value() -> None:
    with pytest.raises(InvalidUri, match=r"invalid procedure 'a b'"):
        check_uri("a b", what="procedure")


def test_unknown_match_policy() -> None:
    with pytest.raises(InvalidUri, match="invalid match policy 'regex'"):
        check_uri("a", "regex")


@pytest.mark.parametrize(
    ("topic", "pattern", "match", "expected"),
    [
        ("a.b", "a.b", "exact", True),
        ("a.b", "a", "exact", False),
        ("a.b", "a.", "prefix", True),
        ("ab.c", "a.", "prefix", False),
        ("a.x.c", "a..c", "wildcard", True),
        ("a.x.y.c", "a..c", "wildcard", False),
        ("b.x.c", "a..c", "wildcard", False),
    ],
)
def test_topic_matches(topic: str, pattern: str, match: str, expected: bool) -> None:
    assert topic_matches(topic, pattern, match) is expected


def test_reserved_namespaces() -> None:
    assert is_reserved("wamp.session.list")
    assert is_reserved("broker.authorize")
    assert not is_reserved("wampum.x")
