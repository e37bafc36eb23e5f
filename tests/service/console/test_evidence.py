"""The console's evidence after a real unlearning job: a request's page with its verdict, per-sample evidence,
verified timeline and webhook deliveries; the certificate and the erasure receipt as the API serves them, byte
for byte; the stored audit page with the API's policy; a model's version history and its evidence plot; running
jobs with their phase and progress in the overview's refreshing fragment."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.audits.service import AUDIT_HTML_HEADERS
from service.console import service as console
from service.db import session_factory
from service.erasure.service import sweep
from service.jobs import service as jobs
from service.settings import Settings
from service.tables import utcnow
from service.tenants.service import Principal
from tests.service import tiny
from tests.service.console.conftest import CONSOLE_SECRET, SIGNING_KEY, sign_in
from tests.service.factories import TenantKey
from worker.jobs import Outcome, run_job

pytestmark = pytest.mark.slow  # one real unlearning job and audit per database
FROZEN = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CALLBACK = "http://127.0.0.1:9/hook"  # never answered: its deliveries stay pending, which the page shows


@pytest.fixture
def settings(database_url: str, data_root: Path, tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "home", database_url=database_url, data_root=data_root,
        storage_url=str(tmp_path / "checkpoints"), guard_max_acc_drop=tiny.GUARD_MAX_ACC_DROP,
        signing_key=SIGNING_KEY, console_secret=CONSOLE_SECRET, allow_private_callbacks=True,
    )  # fmt: skip


@pytest.fixture
def forgotten(client: TestClient, tenant: TenantKey, data_root: Path, settings: Settings) -> dict[str, Any]:
    """A model (retention 0: its original is due for destruction at once) and a request a real job completed."""
    model = tiny.register_model(client, tenant, data_root, retention_seconds=0)
    ids = [tiny.sample_id(i) for i in range(12)]
    accepted = tiny.submit(client, tenant, model["id"], ids, subject_request_id="ticket-9", regulation="gdpr",
                           callback_url=CALLBACK)  # fmt: skip
    assert accepted.status_code == 202, accepted.text
    assert run_job(uuid.UUID(accepted.json()["job_id"]), settings=settings, device="cpu") == Outcome.succeeded
    request = client.get(f"/v1/deletion-requests/{accepted.json()['id']}", headers=tenant.headers).json()
    assert request["status"] == "completed" and request["version"] == 2
    return {"model": model, "request": request, "ids": ids}


def test_a_completed_requests_page_shows_its_verdict_evidence_timeline_and_deliveries(
    client: TestClient, browser: TestClient, tenant: TenantKey, forgotten: dict[str, Any]
) -> None:
    request, model = forgotten["request"], forgotten["model"]
    audit = client.get(f"/v1/models/{model['id']}/versions/2/audit", headers=tenant.headers).json()
    sign_in(browser, tenant.key)
    assert browser.get(f"/console/requests/{request['id']}").status_code == 200  # starts the chain's first walk
    for thread in list(console._walks.values()):
        thread.join()
    page = browser.get(f"/console/requests/{request['id']}")
    assert page.status_code == 200, page.text
    text = page.text
    assert f'class="badge verdict-{audit["verdict"]}">{audit["verdict"]}</span>' in text
    evidence = re.findall(r"<tr>\s*<th scope=\"row\"><code>([^<]+)</code></th>", text)
    assert sorted(evidence) == sorted(forgotten["ids"])  # one row per sample this version forgot
    assert "event chain verifies" in text
    assert "deletion_request.completed" in text and "deletion_request.received" in text
    assert f"/console/models/{model['id']}/versions/2/audit" in text
    assert f"/console/requests/{request['id']}/certificate.json" in text
    assert "Erasure receipt: not yet issued" in text
    deliveries = text.split('id="deliveries"')[1]
    assert "deletion_request.queued" in deliveries and "pending" in deliveries
    secret = client.get("/v1/webhook-secret", headers=tenant.headers).json()["secret"]
    assert secret not in text and secret.removeprefix("whsec_") not in text


def test_the_certificate_download_is_the_apis_document_byte_for_byte(
    client: TestClient, browser: TestClient, tenant: TenantKey, forgotten: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Frozen(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return FROZEN

    monkeypatch.setattr("service.audits.certificate.datetime", Frozen)  # one issued_at for both signings
    sign_in(browser, tenant.key)
    mine = browser.get(f"/console/requests/{forgotten['request']['id']}/certificate.json")
    assert mine.status_code == 200, mine.text
    assert mine.headers["content-disposition"].startswith("attachment;")
    api = client.get(f"/v1/models/{forgotten['model']['id']}/versions/2/certificate", headers=tenant.headers)
    assert mine.content == api.content


def test_the_receipt_is_a_409_page_until_the_sweep_then_the_apis_document(
    client: TestClient, browser: TestClient, tenant: TenantKey, forgotten: dict[str, Any], settings: Settings
) -> None:
    request_id = forgotten["request"]["id"]
    sign_in(browser, tenant.key)
    early = browser.get(f"/console/requests/{request_id}/receipt.json")
    assert early.status_code == 409 and early.headers["content-type"].startswith("text/html")
    assert "has no erasure receipt yet" in early.text

    swept = sweep(session_factory(settings.database_url), settings=settings, now=utcnow() + timedelta(seconds=1))
    assert swept.receipts == [uuid.UUID(request_id)]
    mine = browser.get(f"/console/requests/{request_id}/receipt.json")
    api = client.get(f"/v1/deletion-requests/{request_id}/receipt", headers=tenant.headers)
    assert mine.status_code == 200 and mine.content == api.content
    page = browser.get(f"/console/requests/{request_id}").text
    assert f"/console/requests/{request_id}/receipt.json" in page
    history = browser.get(f"/console/models/{forgotten['model']['id']}").text
    assert "badge-destroyed" in history  # the original's checkpoint, with when and why


def test_the_audit_page_is_the_stored_report_with_the_apis_policy(
    client: TestClient, browser: TestClient, tenant: TenantKey, forgotten: dict[str, Any]
) -> None:
    sign_in(browser, tenant.key)
    path = f"/models/{forgotten['model']['id']}/versions/2/audit"
    mine = browser.get(f"/console{path}")
    api = client.get(f"/v1{path}.html", headers=tenant.headers)
    assert mine.status_code == 200 and mine.content == api.content
    assert mine.headers["content-security-policy"] == AUDIT_HTML_HEADERS["Content-Security-Policy"]
    assert mine.headers["x-frame-options"] == "DENY" and mine.headers["cache-control"] == "no-store"
    assert browser.get(f"/console/models/{forgotten['model']['id']}/versions/1/audit").status_code == 404


def test_the_model_page_lists_versions_with_verdicts_and_plots_the_evidence(
    client: TestClient, browser: TestClient, tenant: TenantKey, forgotten: dict[str, Any], settings: Settings
) -> None:
    model_id = forgotten["model"]["id"]
    version = client.get(f"/v1/models/{model_id}/versions/2", headers=tenant.headers).json()
    sign_in(browser, tenant.key)
    page = browser.get(f"/console/models/{model_id}").text
    assert f'verdict-{version["metrics"]["verdict"]}' in page
    assert f'<td class="num">{version["forgotten_count"]}</td>' in page
    assert 'alt="Two panels over the versions' in page and f"/console/models/{model_id}/evidence.svg" in page

    with session_factory(settings.database_url)() as session:
        principal = Principal(tenant_id=tenant.tenant_id, api_key_id=uuid.uuid4(), scopes=frozenset({"read"}))
        [point] = console.evidence_points(session, principal=principal, model_id=uuid.UUID(model_id))
    auc = version["metrics"]["cumulative"]["auc"]
    assert (point.version, point.union_auc, point.union_auc_low, point.union_auc_high) == (
        2, auc["value"], auc["ci_low"], auc["ci_high"])  # fmt: skip
    assert point.test_acc == version["metrics"]["test_acc"]
    assert point.original_test_acc == pytest.approx(
        version["metrics"]["test_acc"] + version["metrics"]["test_acc_drop_vs_original"]
    )
    svg = browser.get(f"/console/models/{model_id}/evidence.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in svg.text and "no data yet" not in svg.text

    overview = browser.get("/console/").text
    assert f"/console/models/{model_id}/versions/2/audit" in overview  # the latest audits


def test_a_running_job_shows_its_phase_and_progress_in_the_refreshing_fragment(
    client: TestClient, browser: TestClient, tenant: TenantKey, data_root: Path, settings: Settings
) -> None:
    model = tiny.register_model(client, tenant, data_root)
    accepted = tiny.submit(client, tenant, model["id"], [tiny.sample_id(1)]).json()
    assert tiny.claim(settings.database_url, accepted["job_id"])
    with session_factory(settings.database_url)() as session, session.begin():
        jobs.report_progress(session, job_id=uuid.UUID(accepted["job_id"]), owner="test-worker", phase="fine-tune",
                             fraction=0.425, eta_at=utcnow() + timedelta(minutes=5))  # fmt: skip
    sign_in(browser, tenant.key)
    overview = browser.get("/console/").text
    assert 'data-refresh-url="/console/fragments/jobs"' in overview
    fragment = browser.get("/console/fragments/jobs")
    assert fragment.status_code == 200
    assert "fine-tune" in fragment.text and "42.5%" in fragment.text and "<time datetime=" in fragment.text
    assert "<html" not in fragment.text  # a fragment, swapped into the page by console.js
    request_page = browser.get(f"/console/requests/{accepted['id']}").text
    assert "fine-tune" in request_page and "42.5%" in request_page
