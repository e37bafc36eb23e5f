"""The console's pages (GET /console/...): sign-in and sign-out, the cookie's flags, the security headers of
every page, another tenant's objects as 404 pages, bad input as 422 pages, the request list's filters and pages,
the suppression list and its CSV, and that visiting every page changes nothing in the ledger."""

from __future__ import annotations

import csv
import io
import re
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.app import create_app
from service.console import service as console_service
from service.console.endpoints import SECURITY_HEADERS
from service.console.session import COOKIE_NAME
from service.db import session_factory
from service.settings import Settings
from service.tables import Base
from tests.service import tiny
from tests.service.console.conftest import sign_in
from tests.service.factories import TenantKey, tamper_with_event

HTML = "text/html"


def _submit(client: TestClient, tenant: TenantKey, model_id: str, ids: list[int], **fields: Any) -> dict[str, Any]:
    response = tiny.submit(client, tenant, model_id, [tiny.sample_id(i) for i in ids], **fields)
    assert response.status_code in (200, 202), response.text
    return response.json()


def _secret_part(key: str) -> str:
    # ulk_<8 characters>_<secret>: the secret may hold "_" itself
    return key[len("ulk_12345678_"):]


def _pages(model_id: str, request_id: str) -> list[str]:
    """Every console page of a tenant with one model and one request."""
    return [
        "/console/",
        "/console/fragments/jobs",
        "/console/requests-per-week.svg",
        "/console/requests",
        "/console/requests?status=queued&overdue=true&regulation=gdpr&subject_request_id=t-1",
        f"/console/requests/{request_id}",
        "/console/models",
        f"/console/models/{model_id}",
        f"/console/models/{model_id}/evidence.svg",
        f"/console/models/{model_id}/forgotten-samples",
        f"/console/models/{model_id}/forgotten-samples?sample_id={tiny.sample_id(1)}",
        f"/console/models/{model_id}/forgotten-samples.csv",
        "/console/static/console.css",
        "/console/static/console.js",
    ]


# ---- signing in and out ----


def test_pages_without_a_session_redirect_to_sign_in_naming_the_page(browser: TestClient) -> None:
    response = browser.get("/console/requests?status=queued")
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.path == "/console/sign-in"
    assert parse_qs(location.query)["next"] == ["/console/requests?status=queued"]


def test_the_sign_in_form_has_one_labelled_password_field(browser: TestClient) -> None:
    response = browser.get("/console/sign-in")
    assert response.status_code == 200 and response.headers["content-type"].startswith(HTML)
    assert '<label for="api_key">API key</label>' in response.text
    assert re.search(r'<input id="api_key" name="api_key" type="password"', response.text)


def test_sign_in_sets_an_http_only_strict_cookie_on_the_console_path_and_goes_to_next(
    browser: TestClient, tenant: TenantKey
) -> None:
    response = sign_in(browser, tenant.key, "/console/models")
    assert response.headers["location"] == "/console/models"
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith(f"{COOKIE_NAME}=")
    assert "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie and "Path=/console" in set_cookie
    assert "Secure" not in set_cookie  # plain HTTP: a Secure cookie would never come back
    assert browser.get("/console/").status_code == 200


def test_the_cookie_is_secure_over_https(settings: Settings, tenant: TenantKey) -> None:
    with TestClient(create_app(settings), base_url="https://testserver", follow_redirects=False) as client:
        response = client.post("/console/sign-in", data={"api_key": tenant.key})
    assert response.status_code == 303
    assert "Secure" in response.headers["set-cookie"]


def test_the_cookie_holds_neither_the_key_nor_its_secret(browser: TestClient, tenant: TenantKey) -> None:
    sign_in(browser, tenant.key)
    value = browser.cookies.get(COOKIE_NAME)
    secret = _secret_part(tenant.key)
    assert tenant.key not in value and secret not in value and tenant.key[:12] not in value


def test_an_unknown_key_gets_the_form_again_with_a_401_and_no_cookie(browser: TestClient, tenant: TenantKey) -> None:
    wrong = tenant.key[:-4] + ("aaaa" if not tenant.key.endswith("aaaa") else "bbbb")
    for key in (wrong, "not a key", ""):
        response = browser.post("/console/sign-in", data={"api_key": key})
        assert response.status_code == 401
        assert "unknown, revoked or lacks the read scope" in response.text
        assert COOKIE_NAME not in response.headers.get("set-cookie", "")
        assert wrong not in response.text  # the form is not refilled with what was typed


def test_sign_out_clears_the_cookie_and_the_pages_need_signing_in_again(browser: TestClient, tenant: TenantKey) -> None:
    sign_in(browser, tenant.key)
    response = browser.post("/console/sign-out")
    assert response.status_code == 303 and response.headers["location"].startswith("/console/sign-in")
    assert f'{COOKIE_NAME}=""' in response.headers["set-cookie"] and "Max-Age=0" in response.headers["set-cookie"]
    assert browser.get("/console/").status_code == 303


def test_a_revoked_key_is_signed_out_at_its_next_page(
    client: TestClient, browser: TestClient, tenant: TenantKey
) -> None:
    created = client.post("/v1/api-keys", json={"name": "officer", "scopes": ["read"]}, headers=tenant.headers)
    assert created.status_code == 201, created.text
    sign_in(browser, created.json()["key"])
    assert browser.get("/console/requests").status_code == 200
    assert client.delete(f"/v1/api-keys/{created.json()['id']}", headers=tenant.headers).status_code == 204

    response = browser.get("/console/requests")
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.path == "/console/sign-in" and parse_qs(location.query)["reason"] == ["revoked"]
    assert "Max-Age=0" in response.headers["set-cookie"]  # the cookie is cleared
    page = browser.get(response.headers["location"])
    assert "revoked" in page.text and page.status_code == 200


def test_a_forged_cookie_signs_out(browser: TestClient, tenant: TenantKey) -> None:
    sign_in(browser, tenant.key)
    payload, mac = browser.cookies.get(COOKIE_NAME).split(".")
    browser.cookies.set(COOKIE_NAME, f"{payload}.{mac[::-1]}", path="/console")
    response = browser.get("/console/")
    assert response.status_code == 303 and "reason=invalid" in response.headers["location"]


# ---- pages, headers, tenants ----


def test_every_page_renders_with_the_security_headers_and_never_shows_the_key(
    client: TestClient, browser: TestClient, tenant: TenantKey, model: dict[str, Any]
) -> None:
    accepted = _submit(client, tenant, model["id"], [1, 2, 3], subject_request_id="t-1", regulation="gdpr",
                       callback_url=None)  # fmt: skip
    sign_in(browser, tenant.key)
    for path in [*_pages(model["id"], accepted["id"]), "/console/sign-in", "/console/no-such-page"]:
        response = browser.get(path)
        assert response.status_code == (404 if path.endswith("no-such-page") else 200), (path, response.text[:500])
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value, (path, name)
        assert tenant.key not in response.text, path
        assert _secret_part(tenant.key) not in response.text, path
        if response.headers["content-type"].startswith(HTML) and path != "/console/fragments/jobs":
            assert "<main" in response.text and "<script" in response.text
            assert not re.search(r"<script(?![^>]*\bsrc=)", response.text), path  # no inline script
            assert " style=" not in response.text and "<style" not in response.text, path  # no inline style


def test_the_policy_allows_only_the_consoles_own_script_styles_and_fetches_and_no_framing(
    browser: TestClient, tenant: TenantKey
) -> None:
    sign_in(browser, tenant.key)
    policy = dict(
        directive.strip().split(" ", 1) for directive in browser.get("/console/").headers["content-security-policy"].split(";")
    )
    assert policy == {
        "default-src": "'none'", "script-src": "'self'", "style-src": "'self'", "img-src": "'self' data:",
        "connect-src": "'self'",  # console.js fetches the running jobs' fragment
        "form-action": "'self'", "frame-ancestors": "'none'", "base-uri": "'none'",
    }  # fmt: skip


def test_another_tenants_request_and_model_are_404_pages_without_their_data(
    client: TestClient, browser: TestClient, tenant: TenantKey, other_tenant: TenantKey, model: dict[str, Any]
) -> None:
    accepted = _submit(client, tenant, model["id"], [4], subject_request_id="acme-secret-ref")
    sign_in(browser, other_tenant.key)
    paths = [
        f"/console/requests/{accepted['id']}",
        f"/console/requests/{accepted['id']}/certificate.json",
        f"/console/requests/{accepted['id']}/receipt.json",
        f"/console/models/{model['id']}",
        f"/console/models/{model['id']}/evidence.svg",
        f"/console/models/{model['id']}/versions/1/audit",
        f"/console/models/{model['id']}/forgotten-samples",
        f"/console/models/{model['id']}/forgotten-samples.csv",
    ]
    for path in paths:
        response = browser.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith(HTML), path
        assert "acme-secret-ref" not in response.text and tiny.sample_id(4) not in response.text
    listed = browser.get("/console/requests")
    assert "acme-secret-ref" not in listed.text and "No deletion request" in listed.text
    assert "tiny" not in browser.get("/console/models").text


@pytest.mark.parametrize(
    "path",
    [
        "/console/requests/not-a-uuid",
        "/console/models/123/forgotten-samples",
        "/console/requests?status=sleeping",
        "/console/requests?overdue=maybe",
        "/console/requests?model_id=nope",
        "/console/requests?page_token=forged",
        "/console/requests?sort=colour",
        "/console/models?page_token=%00%00",
        "/console/models?page_token=" + "a" * 5000,
        "/console/models/00000000-0000-0000-0000-000000000000/forgotten-samples?sample_id=a%00b",
        "/console/models/00000000-0000-0000-0000-000000000000/forgotten-samples?state=gone",
        "/console/models/00000000-0000-0000-0000-000000000000/versions/0/audit",
        "/console/requests?subject_request_id=a%00b",
    ],
)
def test_bad_ids_and_query_values_are_422_pages_naming_the_input(
    browser: TestClient, tenant: TenantKey, path: str
) -> None:
    sign_in(browser, tenant.key)
    response = browser.get(path)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(HTML)
    assert "Content-Security-Policy" in response.headers
    assert 'role="alert"' in response.text


def test_unknown_ids_are_404_pages(browser: TestClient, tenant: TenantKey) -> None:
    sign_in(browser, tenant.key)
    for path in (f"/console/requests/{uuid.uuid4()}", f"/console/models/{uuid.uuid4()}", "/console/static/x.js"):
        response = browser.get(path)
        assert response.status_code == 404, path


# ---- the overview and the request list ----


def test_the_overview_counts_requests_by_state_and_what_is_overdue(
    client: TestClient, browser: TestClient, tenant: TenantKey, model: dict[str, Any]
) -> None:
    _submit(client, tenant, model["id"], [1], regulation="gdpr", received_at="2026-01-05T09:00:00Z")  # overdue
    _submit(client, tenant, model["id"], [2], regulation="ccpa")
    cancelled = _submit(client, tenant, model["id"], [3])
    client.delete(f"/v1/deletion-requests/{cancelled['id']}", headers=tenant.headers)
    sign_in(browser, tenant.key)
    page = browser.get("/console/").text
    counts = dict(re.findall(r'badge-(\w+)">\w+</span></a></th>\s*<td class="num">(\d+)</td>', page))
    assert counts["queued"] == "2" and counts["cancelled"] == "1" and counts["completed"] == "0"
    overdue = re.search(r'href="/console/requests\?overdue=true">\s*<span class="count">(\d+)</span>', page)
    assert overdue and overdue.group(1) == "1"
    assert "No job is running." in page


def test_the_request_list_filters_as_the_api_does(
    client: TestClient, browser: TestClient, tenant: TenantKey, model: dict[str, Any]
) -> None:
    _submit(client, tenant, model["id"], [1], subject_request_id="ticket-a", regulation="gdpr",
            received_at="2026-01-05T09:00:00Z")  # fmt: skip
    _submit(client, tenant, model["id"], [2], subject_request_id="ticket-b", regulation="ccpa")
    sign_in(browser, tenant.key)

    def listed(query: str) -> set[str]:
        response = browser.get(f"/console/requests?{query}")
        assert response.status_code == 200, response.text
        return set(re.findall(r">(ticket-\w)</a></th>", response.text))

    assert listed("") == {"ticket-a", "ticket-b"}
    assert listed("subject_request_id=ticket-b") == {"ticket-b"}
    assert listed("overdue=true") == {"ticket-a"}
    assert listed("overdue=false") == {"ticket-b"}
    assert listed("regulation=gdpr&subject_request_id=&model_id=&overdue=") == {"ticket-a"}  # empty fields: no filter
    assert listed(f"model_id={model['id']}&status=queued&status=running") == {"ticket-a", "ticket-b"}
    assert listed("status=completed") == set()


def test_the_request_list_pages_with_a_next_page_link_carrying_the_filters(
    client: TestClient, browser: TestClient, tenant: TenantKey, model: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("service.console.service.PAGE_SIZE", 2)
    for i in range(5):
        _submit(client, tenant, model["id"], [i], subject_request_id=f"ticket-{i}", regulation="gdpr")
    sign_in(browser, tenant.key)
    seen: list[str] = []
    url: str | None = "/console/requests?regulation=gdpr&sort=received_at&order=asc"
    while url is not None:
        response = browser.get(url)
        assert response.status_code == 200, response.text
        seen += re.findall(r">(ticket-\d)</a></th>", response.text)
        found = re.search(r'<a href="([^"]+)" rel="next">Next page</a>', response.text)
        url = found.group(1).replace("&amp;", "&") if found else None
        if url is not None:
            assert "regulation=gdpr" in url and "page_token=" in url
    assert seen == [f"ticket-{i}" for i in range(5)]


def test_a_request_page_says_when_the_event_chain_does_not_verify(
    client: TestClient, browser: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str
) -> None:
    accepted = _submit(client, tenant, model["id"], [5])
    tamper_with_event(database_url, seq=2)
    sign_in(browser, tenant.key)
    first = browser.get(f"/console/requests/{accepted['id']}")
    assert first.status_code == 200 and "event chain is being verified" in first.text
    for thread in list(console_service._walks.values()):
        thread.join()
    page = browser.get(f"/console/requests/{accepted['id']}")
    assert "event chain does NOT verify: broken at event seq 2" in page.text


# ---- the suppression list ----


def test_the_suppression_list_is_searchable_by_sample_id_and_exports_csv(
    client: TestClient, browser: TestClient, tenant: TenantKey, model: dict[str, Any]
) -> None:
    accepted = _submit(client, tenant, model["id"], [7, 8, 9])
    sign_in(browser, tenant.key)
    base = f"/console/models/{model['id']}/forgotten-samples"
    whole = browser.get(base).text
    assert all(tiny.sample_id(i) in whole for i in (7, 8, 9))
    found = browser.get(base, params={"sample_id": tiny.sample_id(8)}).text
    assert tiny.sample_id(8) in found and tiny.sample_id(7) not in found and accepted["id"][:8] in found
    missing = browser.get(base, params={"sample_id": "digit-9999"}).text
    assert "is not on this model's suppression list" in missing
    assert browser.get(base, params={"state": "forgotten", "sample_id": tiny.sample_id(8)}).text.count(
        "<code>" + tiny.sample_id(8)
    ) == 0  # in flight, not forgotten yet

    exported = browser.get(f"{base}.csv")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [row["sample_id"] for row in rows] == [tiny.sample_id(i) for i in (7, 8, 9)]
    api = client.get(f"/v1/models/{model['id']}/forgotten-samples.csv", headers=tenant.headers)
    assert exported.content == api.content  # the API's export, byte for byte


# ---- read-only ----


def _row_counts(database_url: str) -> dict[str, int]:
    with session_factory(database_url)() as session:
        return {name: session.execute(select(func.count()).select_from(table)).scalar_one()
                for name, table in Base.metadata.tables.items()}  # fmt: skip


def test_visiting_every_page_changes_no_table_of_the_ledger(
    client: TestClient, browser: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str
) -> None:
    accepted = _submit(client, tenant, model["id"], [1, 2], callback_url=None)
    before = _row_counts(database_url)
    sign_in(browser, tenant.key)
    for path in _pages(model["id"], accepted["id"]):
        assert browser.get(path).status_code == 200, path
    for path in (f"/console/requests/{accepted['id']}/certificate.json", f"/console/requests/{accepted['id']}/receipt.json",
                 "/console/requests?status=bad", f"/console/requests/{uuid.uuid4()}"):  # fmt: skip
        assert browser.get(path).status_code in (404, 409, 422), path
    browser.post("/console/sign-out")
    assert _row_counts(database_url) == before
    assert before["event"] > 0 and before["deletion_request"] == 1
