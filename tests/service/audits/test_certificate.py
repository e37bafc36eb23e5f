"""Certificates: Ed25519 signatures over the summary's RFC 8785 form, the signing key (also as a JWK), the CLI
and GET /v1/signing-key. Verification outside Python (openssl, node) is in test_certificate_interop.py."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from service.__main__ import main
from service.app import create_app
from service.audits import certificate
from service.audits.service import AUDIT_HTML_HEADERS, audit_html_response, certificate_of
from service.errors import Conflict
from service.settings import Settings, get_settings
from tests.service.factories import TenantKey

ISSUED = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SEED = bytes(range(32))
SEED_B64 = base64.b64encode(SEED).decode()


def _report(verdict: str = "pass") -> dict:
    """A report in the unlearning.audit.report schema, trimmed to what a certificate reads."""
    current = {"label": "current", "n": 10, "forget_acc": 61.0, "forget_conf": 0.7, "mis": 12.5, "loss_auc": 51.2}
    version = {
        "retain_acc": 99.0,
        "test_acc": 91.5,
        "test_conf": 0.8,
        "current": current,
        "earlier": [{**current, "label": "req-1", "loss_auc": 49.0}],
        "confidence": {},
    }
    return {
        "schema": "unlearning.audit.report/1",
        "context": {
            "model_id": "6f1c0b4e-0000-4000-8000-000000000001",
            "version": 3,
            "parent_version": 2,
            "request_ids": ["req-2"],
            "method": "amun",
            "input_sha256": "a" * 64,
            "output_sha256": "b" * 64,
        },
        "models": {"version": version},
        "rmia": {"measured": False, "reference_models": None, "mode": None, "gamma": None, "seeds": [0, 1, 2]},
        "checks": [],
        "failed_checks": [] if verdict == "pass" else ["loss_auc.current"],
        "verdict": verdict,
    }


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(SEED)


@pytest.fixture
def signed(key: Ed25519PrivateKey) -> dict:
    return certificate.sign(certificate.summary_of(_report(), issued_at=ISSUED), key)


def test_certificate_verifies_with_the_signers_public_key(signed: dict, key: Ed25519PrivateKey) -> None:
    assert signed["algorithm"] == "Ed25519"
    assert signed["key_id"] == hashlib.sha256(base64.b64decode(certificate.public_key_b64(key))).hexdigest()[:16]
    assert certificate.verify(signed, key.public_key())


def test_certificate_survives_a_json_round_trip(signed: dict, key: Ed25519PrivateKey) -> None:
    assert certificate.verify(json.loads(json.dumps(signed, indent=2)), key.public_key())


def test_certificate_says_rfc8785_and_its_signature_is_over_the_summarys_rfc8785_bytes(
    signed: dict, key: Ed25519PrivateKey
) -> None:
    assert signed["canonicalization"] == "RFC8785" and signed["summary"]["kind"] == "unlearning.certificate/2"
    # raises InvalidSignature unless exactly these bytes were signed
    key.public_key().verify(base64.b64decode(signed["signature"]), rfc8785.dumps(signed["summary"]))


def test_certificate_verifies_after_an_encoder_that_writes_100_0_as_100(key: Ed25519PrivateKey) -> None:
    # what broke verifiers in other languages: Python writes 100.0, JavaScript and Go write 100
    report = _report()
    report["models"]["version"]["retain_acc"] = 100.0
    signed = certificate.sign(certificate.summary_of(report, issued_at=ISSUED), key)
    text = json.dumps(signed)
    assert '"retain_acc": 100.0' in text
    rewritten = json.loads(text.replace('"retain_acc": 100.0', '"retain_acc": 100'))
    assert type(rewritten["summary"]["metrics"]["retain_acc"]) is int
    certificate.check(rewritten, key.public_key())


def _old_format(summary: dict, key: Ed25519PrivateKey) -> dict:
    """A certificate as the service signed them before RFC 8785: over Python's json.dumps bytes."""
    summary = {**summary, "kind": "unlearning.certificate/1"}
    text = json.dumps(summary, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    signature = base64.b64encode(key.sign(text.encode())).decode()
    return {"summary": summary, "signature": signature, "algorithm": "Ed25519", "key_id": certificate.key_id(key)}


def test_an_old_format_certificate_is_refused_as_old_format(signed: dict, key: Ed25519PrivateKey) -> None:
    old = _old_format(signed["summary"], key)
    with pytest.raises(certificate.CertificateError, match=r"old-format certificate .*not RFC 8785.*fetch it again"):
        certificate.check(old, key.public_key())


def test_a_certificate_whose_summary_holds_a_number_json_cannot_carry_is_refused(
    signed: dict, key: Ed25519PrivateKey
) -> None:
    # "1e400" parses to inf in Python: no RFC 8785 form, so nothing to check the signature against
    text = json.dumps(signed).replace('"mis": 12.5', '"mis": 1e400')
    with pytest.raises(certificate.CertificateError, match=r"cannot be canonicalised: summary\.metrics\.mis is inf"):
        certificate.check(json.loads(text), key.public_key())


def test_changing_one_byte_of_the_summary_breaks_the_signature(signed: dict, key: Ed25519PrivateKey) -> None:
    text = json.dumps(signed)
    position = text.index('"sha256": "b') + len('"sha256": "')
    tampered = json.loads(text[:position] + "c" + text[position + 1 :])
    assert tampered["summary"]["sha256"] == "c" + "b" * 63
    assert not certificate.verify(tampered, key.public_key())
    with pytest.raises(certificate.CertificateError, match="does not match the summary"):
        certificate.check(tampered, key.public_key())


def test_another_key_does_not_verify(signed: dict) -> None:
    other = Ed25519PrivateKey.generate().public_key()
    assert not certificate.verify(signed, other)
    with pytest.raises(certificate.CertificateError, match="not by the given key"):
        certificate.check(signed, other)


def test_a_key_id_swapped_for_the_verifiers_still_fails_on_the_signature(signed: dict) -> None:
    other = Ed25519PrivateKey.generate()
    forged = {**signed, "key_id": certificate.key_id(other)}
    with pytest.raises(certificate.CertificateError, match="does not match the summary"):
        certificate.check(forged, other.public_key())


def test_malformed_certificates_are_refused_with_a_reason(signed: dict, key: Ed25519PrivateKey) -> None:
    public = key.public_key()
    cases = {
        "a certificate is a JSON object": [signed],
        "lacks \\['signature'\\]": {k: v for k, v in signed.items() if k != "signature"},
        "algorithm 'RS256' is not supported": {**signed, "algorithm": "RS256"},
        "canonicalization 'C14N' is not supported \\(only RFC8785\\)": {**signed, "canonicalization": "C14N"},
        "not valid base64": {**signed, "signature": "!!"},
    }
    for reason, document in cases.items():
        with pytest.raises(certificate.CertificateError, match=reason):
            certificate.check(document, public)


def test_summary_names_version_requests_checkpoints_verdict_and_the_reports_hash() -> None:
    report = _report(verdict="fail")
    summary = certificate.summary_of(report, issued_at=ISSUED)
    assert summary["verdict"] == "fail" and summary["failed_checks"] == ["loss_auc.current"]
    assert (summary["model_id"], summary["version"], summary["parent_version"]) == (report["context"]["model_id"], 3, 2)
    assert summary["request_ids"] == ["req-2"]
    assert (summary["parent_sha256"], summary["sha256"]) == ("a" * 64, "b" * 64)
    assert summary["metrics"]["loss_auc"] == 51.2 and summary["metrics"]["earlier_loss_auc"] == {"req-1": 49.0}
    assert summary["report_sha256"] == hashlib.sha256(rfc8785.dumps(report)).hexdigest()
    assert summary["issued_at"] == "2026-11-27T12:00:00+00:00"
    assert "not a mathematical proof" in summary["statement"]


def test_summary_refuses_a_report_that_does_not_name_its_checkpoints() -> None:
    report = _report()
    del report["context"]["output_sha256"]
    with pytest.raises(ValueError, match=r"lacks \['output_sha256'\]"):
        certificate.summary_of(report)


@pytest.mark.parametrize(
    ("place", "value", "reason"),
    [
        ("models.version.current.loss_auc", float("nan"), r"report\.models\.version\.current\.loss_auc is nan,"),
        ("models.version.test_acc", float("inf"), r"report\.models\.version\.test_acc is inf,"),
        ("context.seed", 2**63, r"report\.context\.seed is 9223372036854775808, beyond the integers"),
        ("context.request_ids", ["\ud800"], r"report\.context\.request_ids\[0\] holds a lone surrogate"),
    ],
    ids=["nan", "infinity", "integer-beyond-2**53", "lone-surrogate"],
)
def test_a_report_rfc8785_cannot_represent_is_refused_naming_the_value(place, value, reason) -> None:
    report = _report()
    *parents, leaf = place.split(".")
    holder = report
    for step in parents:
        holder = holder[step]
    holder[leaf] = value
    with pytest.raises(certificate.Uncertifiable, match=reason):
        certificate.summary_of(report, issued_at=ISSUED)


def test_the_certificate_of_a_report_rfc8785_cannot_represent_is_a_409_not_a_500(tmp_path: Path) -> None:
    report = _report()
    report["models"]["version"]["current"]["mis"] = float("nan")
    with pytest.raises(Conflict, match="no certificate can be signed .*current\\.mis is nan") as raised:
        certificate_of(report, _settings(tmp_path, signing_key=SEED_B64))
    assert raised.value.status == 409


def test_summary_refuses_a_report_lacking_a_metric_by_its_path() -> None:
    report = _report()
    del report["models"]["version"]["current"]["mis"]
    with pytest.raises(certificate.Uncertifiable, match=r"the report lacks models\.version\.current\.mis"):
        certificate.summary_of(report, issued_at=ISSUED)


def test_an_inconclusive_verdict_is_certified_as_the_report_states_it(key: Ed25519PrivateKey) -> None:
    signed = certificate.sign(certificate.summary_of(_report(verdict="inconclusive"), issued_at=ISSUED), key)
    assert signed["summary"]["verdict"] == "inconclusive"
    assert certificate.verify(signed, key.public_key())


# ---- the key ----


def _settings(tmp_path: Path, **kwargs) -> Settings:
    values = {"database_url": f"sqlite:///{tmp_path / 'ledger.db'}", "signing_key_file": tmp_path / "var" / "key"}
    return Settings(**{**values, **kwargs})


def test_public_jwk_is_an_rfc8037_okp_key_with_unpadded_base64url_x(key: Ed25519PrivateKey) -> None:
    jwk = certificate.public_jwk(key)
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    assert jwk["kid"] == certificate.key_id(key)
    assert "=" not in jwk["x"] and len(jwk["x"]) == 43
    assert base64.urlsafe_b64decode(jwk["x"] + "=") == base64.b64decode(certificate.public_key_b64(key))
    assert certificate.public_key_from_jwk(jwk) == key.public_key()


def test_a_jwk_that_is_not_an_ed25519_public_key_is_refused_with_a_reason(key: Ed25519PrivateKey) -> None:
    jwk = certificate.public_jwk(key)
    cases = {
        "a JWK is a JSON object": [jwk],
        "kty 'RSA' crv None, not an OKP Ed25519 key": {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
        "kty 'OKP' crv 'X25519', not an OKP Ed25519 key": {**jwk, "crv": "X25519"},
        "x is not 32 bytes in base64url without padding": {**jwk, "x": jwk["x"] + "="},
    }
    for reason, document in cases.items():
        with pytest.raises(ValueError, match=reason):
            certificate.public_key_from_jwk(document)


def test_embedded_default_creates_a_private_key_file_once_and_reuses_it(tmp_path: Path) -> None:
    first = certificate.signing_key(_settings(tmp_path))
    path = tmp_path / "var" / "key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert certificate.ensure_key_file(path).public_key() == first.public_key()
    assert [p.name for p in path.parent.iterdir()] == ["key"]  # no temporary file left behind


def test_configured_signing_key_is_used(tmp_path: Path) -> None:
    key = certificate.signing_key(_settings(tmp_path, signing_key=SEED_B64))
    assert certificate.public_key_b64(key) == certificate.public_key_b64(Ed25519PrivateKey.from_private_bytes(SEED))
    assert not (tmp_path / "var" / "key").exists()


def test_a_signing_key_of_the_wrong_length_is_refused(tmp_path: Path) -> None:
    with pytest.raises(certificate.SigningKeyUnavailable, match="32-byte Ed25519 seed, got 16 bytes"):
        certificate.signing_key(_settings(tmp_path, signing_key=base64.b64encode(b"x" * 16).decode()))


def test_a_server_database_without_a_signing_key_is_refused(tmp_path: Path) -> None:
    settings = _settings(tmp_path, database_url="postgresql+psycopg://db.invalid/unlearning")
    with pytest.raises(certificate.SigningKeyUnavailable, match="UNLEARN_SIGNING_KEY is not set"):
        certificate.signing_key(settings)
    assert not (tmp_path / "var" / "key").exists()


# ---- the CLI ----


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("UNLEARN_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("UNLEARN_SIGNING_KEY_FILE", str(tmp_path / "no-such-key"))
    monkeypatch.delenv("UNLEARN_SIGNING_KEY", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _write(tmp_path: Path, document: object) -> str:
    path = tmp_path / "certificate.json"
    path.write_text(json.dumps(document))
    return str(path)


def test_cli_accepts_a_valid_certificate(cli_env, tmp_path, signed, key, capsys) -> None:
    code = main(["verify-certificate", _write(tmp_path, signed), "--public-key", certificate.public_key_b64(key)])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("valid: model 6f1c0b4e-0000-4000-8000-000000000001 version 3, verdict pass")


def test_cli_rejects_a_tampered_certificate_with_exit_1_and_one_line(cli_env, tmp_path, signed, key, capsys) -> None:
    tampered = copy.deepcopy(signed)
    tampered["summary"]["verdict"] = "pass "
    code = main(["verify-certificate", _write(tmp_path, tampered), "--public-key", certificate.public_key_b64(key)])
    out = capsys.readouterr().out
    assert code == 1
    assert out.count("\n") == 1 and out.startswith("invalid: the signature does not match the summary")


def test_cli_rejects_an_old_format_certificate_saying_it_is_old(cli_env, tmp_path, signed, key, capsys) -> None:
    old = _old_format(signed["summary"], key)
    assert main(["verify-certificate", _write(tmp_path, old), "--public-key", certificate.public_key_b64(key)]) == 1
    assert capsys.readouterr().out.startswith("invalid: an old-format certificate (no 'canonicalization')")


def test_cli_accepts_the_signers_jwk_as_the_public_key(cli_env, tmp_path, signed, key, capsys) -> None:
    jwk = json.dumps(certificate.public_jwk(key))
    assert main(["verify-certificate", _write(tmp_path, signed), "--public-key", jwk]) == 0
    assert capsys.readouterr().out.startswith("valid: ")
    other = json.dumps(certificate.public_jwk(Ed25519PrivateKey.generate()))
    assert main(["verify-certificate", _write(tmp_path, signed), "--public-key", other]) == 1
    assert "not by the given key" in capsys.readouterr().out


def test_cli_rejects_a_file_that_is_not_json(cli_env, tmp_path, key, capsys) -> None:
    path = tmp_path / "certificate.json"
    path.write_text("{not json")
    assert main(["verify-certificate", str(path), "--public-key", certificate.public_key_b64(key)]) == 1
    assert capsys.readouterr().out.startswith("invalid: Expecting property name")


def test_cli_uses_the_services_own_key_and_prints_it(cli_env, monkeypatch, tmp_path, signed, capsys) -> None:
    monkeypatch.setenv("UNLEARN_SIGNING_KEY", SEED_B64)
    get_settings.cache_clear()
    assert main(["verify-certificate", _write(tmp_path, signed)]) == 0
    assert main(["public-key"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == certificate.public_key_b64(Ed25519PrivateKey.from_private_bytes(SEED))


def test_cli_public_key_jwk_prints_the_services_key_as_a_jwk(cli_env, monkeypatch, capsys) -> None:
    monkeypatch.setenv("UNLEARN_SIGNING_KEY", SEED_B64)
    get_settings.cache_clear()
    assert main(["public-key", "--jwk"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == certificate.public_jwk(Ed25519PrivateKey.from_private_bytes(SEED))


def test_cli_without_any_key_says_so(cli_env, tmp_path, signed, capsys) -> None:
    assert main(["verify-certificate", _write(tmp_path, signed)]) == 1
    assert "error: no signing key" in capsys.readouterr().err
    assert not (tmp_path / "no-such-key").exists()


# ---- HTTP ----


def test_signing_key_endpoint_publishes_the_key_that_verifies_certificates(
    database_url: str, tenant: TenantKey, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, database_url=database_url, signing_key=SEED_B64)
    with TestClient(create_app(settings)) as client:
        response = client.get("/v1/signing-key", headers=tenant.headers)
        anonymous = client.get("/v1/signing-key")
    assert response.status_code == 200 and anonymous.status_code == 401
    body = response.json()
    issued = certificate_of(_report(), settings).model_dump()
    assert body["algorithm"] == "Ed25519" and body["key_id"] == issued["key_id"]
    assert certificate.verify(issued, certificate.public_key_from_b64(body["public_key"]))
    assert body["jwk"]["kid"] == issued["key_id"]
    assert certificate.verify(issued, certificate.public_key_from_jwk(body["jwk"]))


def test_signing_key_endpoint_answers_503_when_the_configured_key_is_unusable(
    database_url: str, tenant: TenantKey, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, database_url=database_url, signing_key="bm90IGEga2V5")  # "not a key"
    with TestClient(create_app(settings)) as client:
        response = client.get("/v1/signing-key", headers=tenant.headers)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "UNLEARN_SIGNING_KEY is unusable" in response.json()["detail"]


def test_audit_page_is_served_with_a_policy_that_allows_no_script() -> None:
    response = audit_html_response("<html></html>")
    assert response.headers["content-security-policy"] == AUDIT_HTML_HEADERS["Content-Security-Policy"]
    assert response.headers["content-security-policy"].startswith("default-src 'none';")  # scripts included
    assert response.media_type == "text/html"
