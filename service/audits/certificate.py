"""Certificates: the summary of a version's audit report, signed with the service's Ed25519 key.

What is signed is the canonical JSON of the summary (sorted keys, no spaces, UTF-8; the same encoder as the
event chain). Anyone holding the public key (GET /v1/signing-key, `python -m service public-key`) can check
a certificate offline; `report_sha256` in the summary binds it to the full report (GET .../audit).
A certificate attests a process and its evidence; it is not a mathematical proof of deletion.

The key: settings.signing_key, a base64 Ed25519 private key seed (32 bytes). Unset, the embedded default
(a SQLite database) creates one on first start in settings.signing_key_file (mode 0600) and reuses it;
any other deployment must set it, one key shared by the API and every worker.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from sqlalchemy import make_url

from service.events.service import canonical_json
from service.settings import Settings

ALGORITHM = "Ed25519"
SUMMARY_KIND = "unlearning.certificate/1"
STATEMENT = "attests a process and its evidence; not a mathematical proof of deletion"
SEED_BYTES = 32
KEY_ID_HEX_CHARS = 16
# context keys of the report (unlearning.audit.report.build_report) that a certificate cannot do without
REQUIRED_CONTEXT = ("model_id", "version", "parent_version", "request_ids", "input_sha256", "output_sha256")
GENERATE_HINT = 'python -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())"'


class CertificateError(ValueError):
    """Why a certificate does not verify, in one line."""


class SigningKeyUnavailable(ValueError):
    """No signing key is configured, or the configured one is unusable (a configuration error)."""


# ---- keys ----


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{what} is not valid base64: {exc}") from exc


def private_key_from_b64(seed_b64: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from its base64 32-byte seed."""
    seed = _b64decode(seed_b64, "the signing key")
    if len(seed) != SEED_BYTES:
        raise ValueError(f"the signing key must be a base64 {SEED_BYTES}-byte Ed25519 seed, got {len(seed)} bytes")
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_from_b64(public_b64: str) -> Ed25519PublicKey:
    """An Ed25519 public key from its base64 raw 32 bytes."""
    raw = _b64decode(public_b64, "the public key")
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def private_key_seed(key: Ed25519PrivateKey) -> bytes:
    """The key's 32-byte seed (callbacks derive their master secret from it when none is configured)."""
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def public_key_b64(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return base64.b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode("ascii")


def key_id(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """A short name of a key: the first hex characters of the sha256 of its raw public bytes."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return hashlib.sha256(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:KEY_ID_HEX_CHARS]


def ensure_key_file(path: Path) -> Ed25519PrivateKey:
    """The key in `path`, created (random, mode 0600) if the file does not exist yet.

    Safe when the API and the local worker start together: the new key is written to a temporary file and
    hard-linked into place, which fails if another process got there first; that process's key is used.
    """
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(base64.b64encode(secrets.token_bytes(SEED_BYTES)).decode("ascii") + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temp, path)
            except FileExistsError:
                pass  # another process created it first: use theirs
        finally:
            temp.unlink(missing_ok=True)
    try:
        return private_key_from_b64(path.read_text())
    except ValueError as exc:
        raise SigningKeyUnavailable(f"the signing key file {path} is unusable: {exc}") from exc


_cache_lock = threading.Lock()
_cache: dict[tuple[str | None, str, bool], Ed25519PrivateKey] = {}


def signing_key(settings: Settings, *, create: bool = True) -> Ed25519PrivateKey:
    """The service's signing key: settings.signing_key, else the embedded default's key file.

    create=False never writes a file (the CLI, which may run from another folder, uses this). Raises
    SigningKeyUnavailable with what to do when there is no usable key.
    """
    configured = settings.signing_key.get_secret_value() if settings.signing_key is not None else None
    cache_key = (configured, str(Path(settings.signing_key_file).resolve()), create)
    with _cache_lock:
        if cache_key in _cache:
            return _cache[cache_key]
        if configured is not None:
            try:
                key = private_key_from_b64(configured)
            except ValueError as exc:
                raise SigningKeyUnavailable(f"UNLEARN_SIGNING_KEY is unusable: {exc}") from exc
        elif Path(settings.signing_key_file).exists() or (create and _is_embedded(settings)):
            key = ensure_key_file(settings.signing_key_file)
        elif create:
            raise SigningKeyUnavailable(
                "UNLEARN_SIGNING_KEY is not set: a deployment on a server database needs one key shared by the "
                f"API and every worker (a base64 32-byte Ed25519 seed, e.g. from `{GENERATE_HINT}`)"
            )
        else:
            raise SigningKeyUnavailable(
                f"no signing key: UNLEARN_SIGNING_KEY is not set and {settings.signing_key_file} does not exist"
            )
        _cache[cache_key] = key
        return key


def _is_embedded(settings: Settings) -> bool:
    # one machine: the API and the local executor share the folder the key file lives in
    return make_url(settings.database_url).get_backend_name() == "sqlite"


# ---- certificates ----


def summary_of(report: dict[str, Any], *, issued_at: datetime | None = None) -> dict[str, Any]:
    """What a certificate states about one version, from its report (unlearning.audit.report schema).

    Keys: kind, statement, verdict, failed_checks, model_id, version, parent_version, request_ids,
    method, parent_sha256, sha256 (the new checkpoint), metrics (this version on its forgotten samples,
    and the loss AUC of every earlier forgotten set), rmia_reference_models, report_sha256 (of the report's
    canonical JSON), issued_at (ISO 8601, UTC).
    """
    context = report.get("context", {})
    missing = [key for key in REQUIRED_CONTEXT if key not in context]
    if missing:
        raise ValueError(f"the report's context lacks {missing}: a certificate must name them")
    version = report["models"]["version"]
    current = version["current"]
    issued_at = issued_at or datetime.now(UTC)
    if issued_at.tzinfo is None:
        raise ValueError("issued_at must be timezone-aware")
    return {
        "kind": SUMMARY_KIND,
        "statement": STATEMENT,
        "verdict": report["verdict"],
        "failed_checks": list(report["failed_checks"]),
        "model_id": str(context["model_id"]),
        "version": context["version"],
        "parent_version": context["parent_version"],
        "request_ids": [str(request_id) for request_id in context["request_ids"]],
        "method": context.get("method"),
        "parent_sha256": context["input_sha256"],
        "sha256": context["output_sha256"],
        "metrics": {
            "forget_acc": current["forget_acc"],
            "retain_acc": version["retain_acc"],
            "test_acc": version["test_acc"],
            "mis": current["mis"],
            "loss_auc": current["loss_auc"],
            "rmia_ft_auc": current.get("rmia_ft_auc"),
            "earlier_loss_auc": {entry["label"]: entry["loss_auc"] for entry in version["earlier"]},
        },
        "rmia_reference_models": report["rmia"]["reference_models"],
        "report_sha256": hashlib.sha256(canonical_json(report).encode("utf-8")).hexdigest(),
        "issued_at": issued_at.astimezone(UTC).isoformat(),
    }


def _signed_bytes(summary: dict[str, Any]) -> bytes:
    return canonical_json(summary).encode("utf-8")


def sign(summary: dict[str, Any], private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """The certificate: {summary, signature (base64), algorithm, key_id}."""
    signature = private_key.sign(_signed_bytes(summary))
    return {
        "summary": summary,
        "signature": base64.b64encode(signature).decode("ascii"),
        "algorithm": ALGORITHM,
        "key_id": key_id(private_key),
    }


def check(certificate: Any, public_key: Ed25519PublicKey) -> None:
    """Raise CertificateError saying why `certificate` is not a valid signature by `public_key`."""
    if not isinstance(certificate, dict):
        raise CertificateError(f"a certificate is a JSON object, got {type(certificate).__name__}")
    missing = [key for key in ("summary", "signature", "algorithm", "key_id") if key not in certificate]
    if missing:
        raise CertificateError(f"the certificate lacks {missing}")
    if certificate["algorithm"] != ALGORITHM:
        raise CertificateError(f"algorithm {certificate['algorithm']!r} is not supported (only {ALGORITHM})")
    if not isinstance(certificate["summary"], dict):
        raise CertificateError("the certificate's summary is not a JSON object")
    expected_id = key_id(public_key)
    if certificate["key_id"] != expected_id:
        raise CertificateError(f"signed by key {certificate['key_id']!r}, not by the given key {expected_id!r}")
    try:
        signature = base64.b64decode(str(certificate["signature"]), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CertificateError(f"the signature is not valid base64: {exc}") from exc
    try:
        public_key.verify(signature, _signed_bytes(certificate["summary"]))
    except InvalidSignature:
        raise CertificateError("the signature does not match the summary (altered, or signed by another key)") from None
    except (TypeError, ValueError) as exc:
        raise CertificateError(f"the summary cannot be canonicalised: {exc}") from exc


def verify(certificate: Any, public_key: Ed25519PublicKey) -> bool:
    """True if `certificate` carries a valid signature by `public_key` over its summary."""
    try:
        check(certificate, public_key)
    except CertificateError:
        return False
    return True


def issue(report: dict[str, Any], settings: Settings, *, issued_at: datetime | None = None) -> dict[str, Any]:
    """The signed certificate of a report with the service's key (what GET .../certificate returns)."""
    return sign(summary_of(report, issued_at=issued_at), signing_key(settings))
