"""Certificates: the summary of a version's audit report, signed with the service's Ed25519 key.

What is signed is the RFC 8785 (JCS) canonical JSON of the summary, and the certificate says so
(`canonicalization: "RFC8785"`): a verifier in any language parses the certificate, canonicalises its summary
with a JCS library (or the canonicalize function of tests/service/audits/verify_certificate.mjs) and checks
the Ed25519 signature with the public key (GET /v1/signing-key, also as an RFC 8037 JWK;
`python -m service public-key [--jwk]`).
`report_sha256` in the summary is the sha256 of the full report's RFC 8785 form (GET .../audit), so the
binding to the report is checkable the same way. A summary or report holding a value JCS cannot represent
(NaN, an infinity, an integer beyond 2**53 - 1, a lone surrogate) is refused when the certificate is built.
Certificates before RFC 8785 (signed over Python's json.dumps bytes, no `canonicalization` field) are refused
with that reason; the service signs on demand, so fetching one again gives the current form.
A certificate attests a process and its evidence; it is not a mathematical proof of deletion.

The key: settings.signing_key, a base64 Ed25519 private key seed (32 bytes). Unset, the embedded default
(a SQLite database) creates one on first start in settings.signing_key_file (mode 0600) and reuses it;
any other deployment must set it, one key shared by the API and every worker.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import os
import re
import secrets
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from sqlalchemy import make_url

from service.settings import Settings

ALGORITHM = "Ed25519"
CANONICALIZATION = "RFC8785"
JWK_ALG = "EdDSA"  # the JOSE name of Ed25519 signatures (RFC 8037 section 3.1)
# /2: signed over RFC 8785, and report_sha256 is of the report's RFC 8785 form (/1 used Python's json.dumps)
SUMMARY_KIND = "unlearning.certificate/2"
STATEMENT = "attests a process and its evidence; not a mathematical proof of deletion"
SEED_BYTES = 32
KEY_ID_HEX_CHARS = 16
# context keys of the report (unlearning.audit.report.build_report) that a certificate cannot do without
REQUIRED_CONTEXT = ("model_id", "version", "parent_version", "request_ids", "input_sha256", "output_sha256")
GENERATE_HINT = 'python -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())"'


class CertificateError(ValueError):
    """Why a certificate does not verify, in one line."""


class Uncertifiable(ValueError):
    """A report no certificate can be built from: a field it must state is missing, or a value RFC 8785 cannot
    represent; the message names the field."""


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


def public_jwk(key: Ed25519PublicKey | Ed25519PrivateKey) -> dict[str, str]:
    """The public key as an RFC 8037 JSON Web Key, which JOSE libraries and node's crypto import directly;
    kid is the key_id certificates name."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    x = base64.urlsafe_b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).rstrip(b"=").decode("ascii")
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": key_id(public), "alg": JWK_ALG, "use": "sig"}


# 32 bytes in base64url without padding (RFC 7515 section 2) are exactly 43 characters
_JWK_X = re.compile(r"[A-Za-z0-9_-]{43}")


def public_key_from_jwk(jwk: Any) -> Ed25519PublicKey:
    """An Ed25519 public key from an RFC 8037 JWK (a dict); ValueError saying what is wrong with it."""
    if not isinstance(jwk, dict):
        raise ValueError(f"a JWK is a JSON object, got {type(jwk).__name__}")
    if (jwk.get("kty"), jwk.get("crv")) != ("OKP", "Ed25519"):
        raise ValueError(f"the JWK is kty {jwk.get('kty')!r} crv {jwk.get('crv')!r}, not an OKP Ed25519 key")
    x = jwk.get("x")
    if not isinstance(x, str) or not _JWK_X.fullmatch(x):
        raise ValueError("the JWK's x is not 32 bytes in base64url without padding")
    return Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(x + "="))


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


def canonical_bytes(value: Any, *, what: str = "the value") -> bytes:
    """The RFC 8785 canonical JSON of `value`: what certificates sign and report_sha256 hashes.

    Raises Uncertifiable naming the first value JCS cannot represent and where it sits in `value` (the
    rfc8785 package would say only "nan is not representable").
    """
    problem = _unrepresentable(value, what)
    if problem is not None:
        raise Uncertifiable(problem)
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeError) as exc:  # a case the walk does not know: still refused
        raise Uncertifiable(f"{what} has no RFC 8785 form: {exc}") from exc


_JCS_INT_MAX = 2**53 - 1  # beyond it an integer has no exact IEEE 754 double, which JCS numbers are


def _unrepresentable(value: Any, path: str) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        if abs(value) > _JCS_INT_MAX:
            return f"{path} is {value}, beyond the integers RFC 8785 represents exactly (|n| <= 2**53 - 1)"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path} is {value}, which RFC 8785 (like JSON) cannot represent"
    if isinstance(value, str):
        return None if _is_unicode(value) else f"{path} holds a lone surrogate, which RFC 8785 refuses (not Unicode)"
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            if (problem := _unrepresentable(item, f"{path}[{index}]")) is not None:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path} has the key {key!r}; JSON object keys are strings"
            if not _is_unicode(key):
                return f"{path} has a key with a lone surrogate, which RFC 8785 refuses (not Unicode)"
            if (problem := _unrepresentable(item, f"{path}.{key}")) is not None:
                return problem
        return None
    return f"{path} is a {type(value).__name__}, not a JSON value"


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def report_sha256(report: dict[str, Any]) -> str:
    """The sha256 of a report's RFC 8785 form: what a certificate's report_sha256 states about GET .../audit."""
    return hashlib.sha256(canonical_bytes(report, what="report")).hexdigest()


def _field(value: Any, path: str, *, within: str = "") -> Any:
    # a report lacking a field the certificate states is refused by name, not with a KeyError (a 500)
    for step in path.split("."):
        if not isinstance(value, dict) or step not in value:
            raise Uncertifiable(f"the report lacks {within}{path}: a certificate must state it")
        value = value[step]
    return value


def summary_of(report: dict[str, Any], *, issued_at: datetime | None = None) -> dict[str, Any]:
    """What a certificate states about one version, from its report (unlearning.audit.report schema).

    Keys: kind, statement, verdict (copied as the report states it), failed_checks, model_id, version,
    parent_version, request_ids, method, parent_sha256, sha256 (the new checkpoint), metrics (this version on
    its forgotten samples, and the loss AUC of every earlier forgotten set), rmia_reference_models, headline,
    inconclusive_checks, evidence ({score, alpha, current, union}: n, indistinguishable and its share with
    interval, AUC with interval; None for reports without per-sample evidence), report_sha256 (of the report's RFC 8785 form), issued_at (ISO 8601, UTC). Raises Uncertifiable when the
    report lacks one of them or holds a value RFC 8785 cannot represent.
    """
    context = report.get("context", {})
    missing = [key for key in REQUIRED_CONTEXT if key not in context]
    if missing:
        raise Uncertifiable(f"the report's context lacks {missing}: a certificate must name them")
    issued_at = issued_at or datetime.now(UTC)
    if issued_at.tzinfo is None:
        raise ValueError("issued_at must be timezone-aware")
    digest = report_sha256(report)  # first: it names a bad value by its place in the report
    version = _field(report, "models.version")
    current = _field(version, "current", within="models.version.")
    earlier_loss_auc = {}
    for index, entry in enumerate(_field(version, "earlier", within="models.version.")):
        where = f"models.version.earlier[{index}]."
        earlier_loss_auc[_field(entry, "label", within=where)] = _field(entry, "loss_auc", within=where)
    return {
        "kind": SUMMARY_KIND,
        "statement": STATEMENT,
        "verdict": _field(report, "verdict"),
        "failed_checks": list(_field(report, "failed_checks")),
        "model_id": str(context["model_id"]),
        "version": context["version"],
        "parent_version": context["parent_version"],
        "request_ids": [str(request_id) for request_id in context["request_ids"]],
        "method": context.get("method"),
        "parent_sha256": context["input_sha256"],
        "sha256": context["output_sha256"],
        "metrics": {
            "forget_acc": _field(current, "forget_acc", within="models.version.current."),
            "retain_acc": _field(version, "retain_acc", within="models.version."),
            "test_acc": _field(version, "test_acc", within="models.version."),
            "mis": _field(current, "mis", within="models.version.current."),
            "loss_auc": _field(current, "loss_auc", within="models.version.current."),
            "rmia_ft_auc": current.get("rmia_ft_auc"),
            "earlier_loss_auc": earlier_loss_auc,
        },
        "rmia_reference_models": _field(report, "rmia.reference_models"),
        # the per-sample evidence in short (reports of schema /2 on; None before): a reader of the certificate
        # sees how many forgotten samples look never seen, for this request and for all so far
        "headline": report.get("headline"),
        "inconclusive_checks": list(report.get("inconclusive_checks", [])),
        "evidence": _evidence_summary(report.get("evidence")),
        "report_sha256": digest,
        "issued_at": issued_at.astimezone(UTC).isoformat(),
    }


def _evidence_summary(evidence: dict[str, Any] | None) -> dict[str, Any] | None:
    if evidence is None:
        return None

    def short(found: dict[str, Any] | None) -> dict[str, Any] | None:
        if found is None:
            return None
        return {"n": found["n"], "indistinguishable": found["indistinguishable"],
                "indistinguishable_pct": found["indistinguishable_pct"], "auc": found["auc"]}  # fmt: skip

    return {"score": evidence["score"], "alpha": evidence["alpha"], "current": short(evidence["current"]),
            "union": short(evidence.get("union"))}  # fmt: skip


def sign(summary: dict[str, Any], private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """The certificate: {summary, signature (base64 Ed25519 over the summary's RFC 8785 bytes), algorithm,
    canonicalization, key_id}. Uncertifiable when the summary has no RFC 8785 form."""
    signature = private_key.sign(canonical_bytes(summary, what="summary"))
    return {
        "summary": summary,
        "signature": base64.b64encode(signature).decode("ascii"),
        "algorithm": ALGORITHM,
        "canonicalization": CANONICALIZATION,
        "key_id": key_id(private_key),
    }


OLD_FORMAT = (
    "an old-format certificate (no 'canonicalization'): it was signed over Python's json.dumps bytes, not "
    "RFC 8785, and is no longer accepted; fetch it again from GET .../certificate, which signs it anew"
)


def check(certificate: Any, public_key: Ed25519PublicKey) -> None:
    """Raise CertificateError saying why `certificate` is not a valid signature by `public_key`."""
    if not isinstance(certificate, dict):
        raise CertificateError(f"a certificate is a JSON object, got {type(certificate).__name__}")
    missing = [key for key in ("summary", "signature", "algorithm", "key_id") if key not in certificate]
    if missing:
        raise CertificateError(f"the certificate lacks {missing}")
    if certificate["algorithm"] != ALGORITHM:
        raise CertificateError(f"algorithm {certificate['algorithm']!r} is not supported (only {ALGORITHM})")
    if "canonicalization" not in certificate:
        raise CertificateError(OLD_FORMAT)
    if certificate["canonicalization"] != CANONICALIZATION:
        raise CertificateError(
            f"canonicalization {certificate['canonicalization']!r} is not supported (only {CANONICALIZATION})"
        )
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
        signed = canonical_bytes(certificate["summary"], what="summary")
    except Uncertifiable as exc:
        raise CertificateError(f"the summary cannot be canonicalised: {exc}") from exc
    try:
        public_key.verify(signature, signed)
    except InvalidSignature:
        raise CertificateError("the signature does not match the summary (altered, or signed by another key)") from None


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
