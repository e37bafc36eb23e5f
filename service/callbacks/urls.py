"""The SSRF guard: a callback URL may only lead to a public address, checked at request creation and again
at every delivery (DNS answers change); the delivery then connects to the very address that was checked.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

import httpx

from service.errors import Unprocessable
from service.settings import Settings

MAX_URL_CHARS = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CallbackUrlError(ValueError):
    """The URL can never be delivered to (bad form, or a forbidden address)."""


class CallbackUrlUnresolvable(CallbackUrlError):
    """The host does not resolve now; it may later (a delivery retries, a new request is refused)."""


@dataclass(frozen=True)
class CheckedUrl:
    url: httpx.URL
    addresses: tuple[IPAddress, ...]  # what the host resolved to, every one of them allowed


def _forbidden_kind(ip: IPAddress) -> str | None:
    """Why an address is not a public one, or None."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 reaches 127.0.0.1
    # most specific first: Python's is_private also covers link-local, reserved and unspecified ranges
    for kind, flag in (
        ("loopback", ip.is_loopback),
        ("unspecified", ip.is_unspecified),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
    ):
        if flag:
            return kind
    # e.g. 100.64.0.0/10 (carrier-grade NAT), which none of the flags above covers
    return None if ip.is_global else "not globally routable"


def _resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return (literal,)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise CallbackUrlUnresolvable(f"callback_url host {host!r} does not resolve: {exc}") from exc
    addresses = tuple(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos))
    if not addresses:
        raise CallbackUrlUnresolvable(f"callback_url host {host!r} resolves to no address")
    return addresses


def check_callback_url(url: str, *, allow_private: bool) -> CheckedUrl:
    """Parse, resolve and check a callback URL; raises CallbackUrlError (or CallbackUrlUnresolvable)."""
    if len(url) > MAX_URL_CHARS:
        raise CallbackUrlError(f"callback_url has {len(url)} characters; at most {MAX_URL_CHARS} are accepted")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise CallbackUrlError(f"callback_url is not a valid URL: {exc}") from exc
    if parsed.scheme not in ("https", "http"):
        raise CallbackUrlError(f"callback_url must be an https URL, got scheme {parsed.scheme!r}")
    # the payload names deletion requests: plain http is only for a receiver on this machine or network
    if parsed.scheme == "http" and not allow_private:
        raise CallbackUrlError(
            "callback_url must use https (http is accepted only with UNLEARN_ALLOW_PRIVATE_CALLBACKS, for local testing)"
        )
    if parsed.userinfo:
        raise CallbackUrlError("callback_url must not carry credentials (user:password@); they would be stored")
    if not parsed.host:
        raise CallbackUrlError("callback_url has no host")
    addresses = _resolve(parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80))
    if not allow_private:
        for ip in addresses:
            kind = _forbidden_kind(ip)
            if kind is not None:
                raise CallbackUrlError(
                    f"callback_url host {parsed.host!r} resolves to {ip}, a {kind} address; callbacks go only to "
                    "public addresses (UNLEARN_ALLOW_PRIVATE_CALLBACKS lifts this for local testing)"
                )
    return CheckedUrl(url=parsed, addresses=addresses)


def validate_callback_url(url: str, settings: Settings) -> str:
    """Check a callback URL of a new deletion request; returns it, or raises a 422 naming what is wrong."""
    try:
        check_callback_url(url, allow_private=settings.allow_private_callbacks)
    except CallbackUrlError as exc:
        raise Unprocessable(str(exc), pointer="#/callback_url") from exc
    return url
