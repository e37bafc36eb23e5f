"""The typed answers of the audit evidence, on SQLite and PostgreSQL: the audit reports, certificates, erasure
receipt and signing key of versions a worker made (run_job, here in the test process; the second version with
RMIA reference models) validate against their response models with every field declared, and the report is
served exactly as stored, so a certificate's report_sha256 and signature still verify. A report of the first
schema (before per-sample evidence) is served as stored too, and certified."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import select

from service.audits.schemas import AuditReportRead, CertificateRead, LegacyAuditReportRead, SigningKeyRead
from service.db import session_factory
from service.erasure.schemas import ErasureReceiptRead
from service.erasure.service import sweep
from service.settings import Settings
from service.tables import ModelVersion, utcnow
from tests.service import tiny
from tests.service.erasure.ledger import complete_job
from tests.service.factories import TenantKey
from unlearning_client import verify_certificate, verify_receipt
from worker.jobs import Outcome, run_job

IDS = [tiny.sample_id(i) for i in range(20)]
# a report as unlearning.audit.report/1 wrote them (set-level results, pass/fail checks without intervals)
CURRENT_V1 = {"label": "current", "n": 4, "forget_acc": 50.0, "forget_conf": 0.61, "mis": 25.0, "loss_auc": 55.5}
CONFIDENCE_V1 = {"n": 4, "mean": 0.6, "std": 0.1, "min": 0.4, "p05": 0.42, "p25": 0.5, "median": 0.6, "p75": 0.7,
                 "p95": 0.78, "max": 0.8, "counts": [0, 1, 2, 1]}  # fmt: skip
MODEL_V1 = {"retain_acc": 99.0, "test_acc": 90.5, "test_conf": 0.81, "current": CURRENT_V1, "earlier": [],
            "confidence": {"forget": CONFIDENCE_V1, "remaining": CONFIDENCE_V1, "test": CONFIDENCE_V1}}  # fmt: skip
CHECK_V1 = {"name": "loss_auc.current", "description": "loss-threshold AUC, forget vs test, of the samples forgotten "
            "by this version", "value": 55.5, "min": 40.0, "max": 60.0, "limit": "40 <= value <= 60", "passed": True}  # fmt: skip


def _legacy_report(model_id: str, version: ModelVersion, parent_sha256: str) -> dict[str, Any]:
    return {
        "schema": "unlearning.audit.report/1",
        "context": {"model_id": model_id, "version": version.number, "parent_version": 1, "request_ids": [],
                    "method": "amun", "input_sha256": parent_sha256, "output_sha256": version.sha256},  # fmt: skip
        "data": {"current": {"n": 4}, "earlier": [], "retain_sample": {"n": 100}, "test": {"n": 200}, "mis_seed": 0},
        "rmia": {"measured": False, "reference_models": None, "mode": None, "gamma": None, "seeds": [0, 1, 2]},
        "models": {"version": MODEL_V1, "parent": MODEL_V1, "original": MODEL_V1},
        "confidence_bins": [0.0, 0.25, 0.5, 0.75, 1.0],
        "gap_to_retrained": None,
        "thresholds": {"auc_center": 50.0, "loss_auc_tolerance": 10.0, "rmia_auc_tolerance": 10.0,
                       "max_test_acc_drop": 3.0},  # fmt: skip
        "checks": [CHECK_V1],
        "failed_checks": [],
        "verdict": "pass",
    }


@pytest.fixture
def settings(database_url: str, data_root: Path, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, data_root=data_root, storage_url=str(tmp_path / "checkpoints"),
                    signing_key=base64.b64encode(bytes(range(32))).decode(), signing_key_file=tmp_path / "unused-key",
                    guard_max_acc_drop=tiny.GUARD_MAX_ACC_DROP)  # fmt: skip


def _undeclared(value: Any, where: str = "") -> list[str]:
    """Every field in a validated model tree that its model does not declare (kept by extra="allow")."""
    if isinstance(value, BaseModel):
        found = [f"{where}.{key}" for key in value.model_extra or {}]
        for name in type(value).model_fields:
            found += _undeclared(getattr(value, name), f"{where}.{name}")
        return found
    if isinstance(value, list):
        return [item for index, entry in enumerate(value) for item in _undeclared(entry, f"{where}[{index}]")]
    if isinstance(value, dict):
        return [item for key, entry in value.items() for item in _undeclared(entry, f"{where}[{key}]")]
    return []


def _get(client: TestClient, tenant: TenantKey, path: str) -> Any:
    answer = client.get(path, headers=tenant.headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _original_sha256(client: TestClient, tenant: TenantKey, model_id: str) -> str:
    return _get(client, tenant, f"/v1/models/{model_id}/versions/1")["checkpoint"]["sha256"]


def _run(settings: Settings, job_id: str) -> None:
    assert run_job(uuid.UUID(job_id), settings=settings, device="cpu") == Outcome.succeeded


def _stored_audit(settings: Settings, model_id: str, number: int) -> Any:
    with session_factory(settings.database_url)() as session:
        return session.scalars(
            select(ModelVersion.audit).where(ModelVersion.model_id == uuid.UUID(model_id), ModelVersion.number == number)
        ).one()


def test_the_evidence_of_real_versions_is_typed_in_full_and_served_as_stored_and_signed(
    client: TestClient, tenant: TenantKey, settings: Settings, data_root: Path
) -> None:
    model = tiny.register_model(client, tenant, data_root, retention_seconds=0)["id"]
    _run(settings, tiny.submit(client, tenant, model, IDS[:10]).json()["job_id"])
    references = client.post(f"/v1/models/{model}/reference-models", json={"k": 2}, headers=tenant.headers)
    assert references.status_code == 202, references.text
    _run(settings, references.json()["id"])
    second = tiny.submit(client, tenant, model, IDS[10:20]).json()
    _run(settings, second["job_id"])  # version 3, audited with RMIA and against version 2's samples
    key = _get(client, tenant, "/v1/signing-key")
    assert _undeclared(SigningKeyRead.model_validate(key)) == []

    for number in (2, 3):
        base = f"/v1/models/{model}/versions/{number}"
        served = _get(client, tenant, f"{base}/audit")
        assert served == _stored_audit(settings, model, number)
        report = AuditReportRead.model_validate(served)
        assert _undeclared(report) == []
        certificate = _get(client, tenant, f"{base}/certificate")
        assert _undeclared(CertificateRead.model_validate(certificate)) == []
        verify_certificate(certificate, key, report=served)
    assert report.rmia.measured and report.rmia.reference_models == 2
    assert [entry.label for entry in report.data.earlier] == ["v2"]

    swept = sweep(session_factory(settings.database_url), settings=settings, now=utcnow() + timedelta(seconds=1))
    assert uuid.UUID(second["id"]) in swept.receipts
    receipt = _get(client, tenant, f"/v1/deletion-requests/{second['id']}/receipt")
    typed = ErasureReceiptRead.model_validate(receipt)
    assert _undeclared(typed) == []
    # versions 1 and 2 held its samples, and so did the reference models trained before it
    assert sorted(item.kind for item in typed.summary.destroyed) == ["model_version", "model_version", "reference_set"]
    verify_receipt(receipt, key, request_id=second["id"])


def test_a_report_of_the_first_schema_is_served_as_stored_and_certified(
    client: TestClient, tenant: TenantKey, settings: Settings, data_root: Path
) -> None:
    model = tiny.register_model(client, tenant, data_root)
    accepted = tiny.submit(client, tenant, model["id"], IDS[:4])
    version = complete_job(settings, uuid.UUID(accepted.json()["job_id"]))
    with session_factory(settings.database_url)() as session, session.begin():
        row = session.get(ModelVersion, version.id)
        assert row is not None
        legacy = _legacy_report(model["id"], row, parent_sha256=_original_sha256(client, tenant, model["id"]))
        row.audit = legacy

    served = _get(client, tenant, f"/v1/models/{model['id']}/versions/2/audit")
    assert served == legacy
    assert LegacyAuditReportRead.model_validate(served).model_extra == {}
    certificate = _get(client, tenant, f"/v1/models/{model['id']}/versions/2/certificate")
    summary = CertificateRead.model_validate(certificate).summary
    assert (summary.headline, summary.evidence, summary.metrics.loss_auc) == (None, None, 55.5)
    verify_certificate(certificate, _get(client, tenant, "/v1/signing-key"), report=served)
