"""The SSRF guard on callback URLs: only public addresses, checked on every resolution."""

from __future__ import annotations

import socket

import pytest

from service.callbacks import urls
from service.errors import Unprocessable
from service.settings import Settings

STRICT = Settings()
LOCAL = Settings(allow_private_callbacks=True)


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """A fake resolver: host -> addresses; other hosts do not resolve."""
    table: dict[str, list[str]] = {}

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in table[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata endpoints live here
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "not globally routable"),
        ("[::1]", "loopback"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("[fe80::1]", "link-local"),
    ],
)
def test_non_public_addresses_are_refused_naming_the_kind(host: str, kind: str) -> None:
    with pytest.raises(Unprocessable, match=f"a {kind} address; callbacks go only to public addresses") as caught:
        urls.validate_callback_url(f"https://{host}/hook", STRICT)
    assert caught.value.status == 422
    assert caught.value.errors[0].pointer == "#/callback_url"


def test_a_public_address_is_accepted() -> None:
    assert urls.validate_callback_url("https://1.1.1.1/hook", STRICT) == "https://1.1.1.1/hook"


def test_a_name_resolving_to_a_private_address_is_refused(dns) -> None:
    dns["hooks.example.com"] = ["93.184.215.14", "10.0.0.5"]  # one bad answer is enough
    with pytest.raises(Unprocessable, match="'hooks.example.com' resolves to 10.0.0.5, a private address"):
        urls.validate_callback_url("https://hooks.example.com/hook", STRICT)


def test_a_name_resolving_to_public_addresses_is_accepted(dns) -> None:
    dns["hooks.example.com"] = ["93.184.215.14"]
    checked = urls.check_callback_url("https://hooks.example.com:8443/hook", allow_private=False)
    assert [str(a) for a in checked.addresses] == ["93.184.215.14"]


def test_a_host_that_does_not_resolve_is_refused(dns) -> None:
    with pytest.raises(Unprocessable, match="host 'nowhere.example' does not resolve"):
        urls.validate_callback_url("https://nowhere.example/hook", STRICT)


def test_private_addresses_and_http_are_allowed_when_the_guard_is_lifted() -> None:
    assert urls.validate_callback_url("http://127.0.0.1:8080/hook", LOCAL) == "http://127.0.0.1:8080/hook"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://1.1.1.1/hook", "must use https"),
        ("ftp://1.1.1.1/hook", "must be an https URL, got scheme 'ftp'"),
        ("https://user:pw@1.1.1.1/hook", "must not carry credentials"),
        ("https:///hook", "has no host"),
        ("https://1.1.1.1/" + "a" * 2100, "at most 2048 are accepted"),
    ],
)
def test_malformed_urls_are_refused_precisely(url: str, message: str) -> None:
    with pytest.raises(Unprocessable, match=message):
        urls.validate_callback_url(url, STRICT)
