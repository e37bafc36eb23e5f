"""The console's sign-in cookie: signed, carrying the key's row id and never the key, refused once tampered with
or older than its maximum age; the secret that signs it, shared by every process of one home; next= targets."""

from __future__ import annotations

import stat
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from service.console import session as cookies
from service.console.session import ConsoleSession, SignedOut
from service.settings import Settings
from service.tables import utcnow

SECRET = b"s" * 32


def _session() -> ConsoleSession:
    return ConsoleSession(api_key_id=uuid.uuid4(), tenant_id=uuid.uuid4(), issued_at=utcnow())


def test_a_cookie_reads_back_as_the_session_it_was_made_from() -> None:
    made = _session()
    read = cookies.decode(cookies.encode(made, SECRET), SECRET, now=utcnow())
    assert (read.api_key_id, read.tenant_id) == (made.api_key_id, made.tenant_id)
    assert abs(read.issued_at - made.issued_at) < timedelta(seconds=1)


def test_a_cookie_with_a_changed_payload_is_refused() -> None:
    value = cookies.encode(_session(), SECRET)
    payload, mac = value.split(".")
    forged = cookies.encode(_session(), SECRET).split(".")[0]
    with pytest.raises(SignedOut) as raised:
        cookies.decode(f"{forged}.{mac}", SECRET, now=utcnow())
    assert raised.value.reason == "invalid"
    assert payload != forged


def test_a_cookie_signed_with_another_secret_is_refused() -> None:
    with pytest.raises(SignedOut, match="invalid"):
        cookies.decode(cookies.encode(_session(), b"t" * 32), SECRET, now=utcnow())


@pytest.mark.parametrize("value", ["", "no-dot", "abc.def", ".", "a.b.c", "\x00.\x00"])
def test_a_malformed_cookie_signs_out_without_an_error(value: str) -> None:
    with pytest.raises(SignedOut):
        cookies.decode(value, SECRET, now=utcnow())


def test_a_cookie_older_than_its_maximum_age_has_expired() -> None:
    value = cookies.encode(_session(), SECRET)
    with pytest.raises(SignedOut) as raised:
        cookies.decode(value, SECRET, now=utcnow() + cookies.MAX_AGE + timedelta(seconds=5))
    assert raised.value.reason == "expired"


def test_a_cookie_issued_in_the_future_is_refused() -> None:
    future = ConsoleSession(api_key_id=uuid.uuid4(), tenant_id=uuid.uuid4(), issued_at=utcnow() + timedelta(hours=1))
    with pytest.raises(SignedOut, match="invalid"):
        cookies.decode(cookies.encode(future, SECRET), SECRET, now=utcnow())


def test_without_a_configured_secret_one_is_made_once_readable_only_by_its_owner(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    first = cookies.console_secret(settings)
    path = tmp_path / "home" / cookies.SECRET_FILE
    assert path.read_bytes() == first and len(first) == cookies.SECRET_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cookies._secret_file.cache_clear()  # another process of the same home reads the same file
    assert cookies.console_secret(Settings(home=tmp_path / "home")) == first
    assert cookies.console_secret(Settings(home=tmp_path / "other")) != first


def test_a_configured_secret_is_used_and_no_file_is_written(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, console_secret="configured-secret")
    assert cookies.console_secret(settings) == b"configured-secret"
    assert not (tmp_path / cookies.SECRET_FILE).exists()


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/console/requests?status=queued", "/console/requests?status=queued"),
        ("/console/models/1", "/console/models/1"),
        ("/console", "/console"),
        ("https://evil.example/console/", "/console/"),
        ("//evil.example/console/", "/console/"),
        ("/\\evil.example", "/console/"),
        ("/v1/models", "/console/"),
        ("/consoles", "/console/"),
        ("/console/sign-in", "/console/"),
        ("/console/sign-out", "/console/"),
        ("", "/console/"),
        (None, "/console/"),
        ("/console/\r\nSet-Cookie: x", "/console/"),
    ],
)
def test_only_a_local_console_path_is_a_target_after_sign_in(target: str | None, expected: str) -> None:
    assert cookies.safe_next(target) == expected
