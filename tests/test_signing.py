"""The canonical form: unambiguous fields, constant-time comparison."""

import hashlib

import pytest

from broker.core import signing

ARGS = ("dev", "POST", "/api/publish", "1700000000", "0123456789abcdef0123456789abcdef", b'{"topic":"a"}')


def test_canonical_form_is_documented_layout() -> None:
    body_digest = hashlib.sha256(b'{"topic":"a"}').hexdigest().encode()
    assert signing.canonical(*ARGS) == (
        b"BROKER-HMAC-SHA256\ndev\nPOST\n/api/publish\n1700000000\n0123456789abcdef0123456789abcdef\n"
        + body_digest
    )


def test_verify_accepts_own_signature_and_rejects_other_secret() -> None:
    sig = signing.signature("s3cret", *ARGS)
    assert signing.verify("s3cret", *ARGS, sig)
    assert not signing.verify("other", *ARGS, sig)


def test_moving_a_digit_between_fields_breaks_the_signature() -> None:
    """Crossbar's bridge signs key|ts|seq|nonce|body without separators; here fields can't shift."""
    sig = signing.signature("s3cret", *ARGS)
    shifted = ("dev", "POST", "/api/publish", "170000000", "00123456789abcdef0123456789abcdef", ARGS[5])
    assert not signing.verify("s3cret", *shifted, sig)


@pytest.mark.parametrize(
    ("index", "value"),
    [(0, "de\nv"), (1, "post"), (2, "api/publish"), (3, "-1"), (4, "short"), (4, "a\nb" * 10)],
)
def test_fields_that_could_smuggle_a_separator_are_refused(index: int, value: str) -> None:
    args = list(ARGS)
    args[index] = value
    with pytest.raises(signing.SigningError):
        signing.canonical(*args)  # type: ignore[arg-type]
    assert not signing.verify("s3cret", *args, "0" * 64)  # type: ignore[arg-type]


def test_sign_headers_uses_fresh_nonces() -> None:
    a = signing.sign_headers("dev", "s", "POST", "/api/publish", b"{}", now=1700000000)
    b = signing.sign_headers("dev", "s", "POST", "/api/publish", b"{}", now=1700000000)
    assert a[signing.HEADER_TIMESTAMP] == "1700000000"
    assert a[signing.HEADER_NONCE] != b[signing.HEADER_NONCE]
    assert signing.verify(
        "s",
        "dev",
        "POST",
        "/api/publish",
        "1700000000",
        a[signing.HEADER_NONCE],
        b"{}",
        a[signing.HEADER_SIGNATURE],
    )
