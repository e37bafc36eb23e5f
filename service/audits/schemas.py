"""Response bodies of the audit endpoints: the audit report, its signed certificate, the key that verifies it,
and the per-sample evidence.

The report and the certificate's summary are served exactly as stored or signed: report_sha256 and the signature
are over their JSON, so these models keep any field they do not declare (extra="allow"), write instants and
IDs as the strings they are (a datetime would be re-formatted) and declare nothing the document may lack.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Document(BaseModel):
    """A part of a stored or signed document: fields it holds beyond those declared are kept as they are."""

    model_config = ConfigDict(extra="allow")


# an instant inside a signed or stored document, kept as the exact text that was signed (ISO 8601 with an offset)
InstantText = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
Verdict = Literal["pass", "fail", "inconclusive"]


class Interval(Document):
    """An estimate with its 95% two-sided interval."""

    value: float
    ci_low: float
    ci_high: float
    method: str = Field(description="how the interval was computed")


class JwkRead(BaseModel):
    """The public key as an RFC 8037 JSON Web Key (what JOSE libraries and node's crypto.createPublicKey take)."""

    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str = Field(description="the raw 32-byte public key, base64url without padding")
    kid: str = Field(description="the key_id certificates name")
    alg: Literal["EdDSA"]
    use: Literal["sig"]


class SigningKeyRead(BaseModel):
    algorithm: Literal["Ed25519"]
    public_key: str = Field(description="the raw 32-byte Ed25519 public key, base64")
    key_id: str = Field(description="first 16 hex characters of the sha256 of the raw public key")
    jwk: JwkRead = Field(description="the same key as an RFC 8037 JWK")


class CertificateMetrics(Document):
    forget_acc: float = Field(description="this version's accuracy on the samples it forgot (percent)")
    retain_acc: float = Field(description="accuracy on a sample of the remaining training data (percent)")
    test_acc: float = Field(description="accuracy on the scored test half (percent)")
    mis: float = Field(description="membership inference score of the forgotten samples (percent)")
    loss_auc: float = Field(description="loss-threshold forget-vs-test AUC (percent; 50 = indistinguishable)")
    rmia_ft_auc: float | None = Field(description="RMIA forget-vs-test AUC (percent); null without reference models")
    earlier_loss_auc: dict[str, float] = Field(
        description="the loss AUC of each set forgotten by an earlier version, by label (e.g. v2)"
    )


class EvidenceBrief(Document):
    n: int = Field(description="forgotten samples")
    indistinguishable: int = Field(description="of them, those whose p-value against never-seen data is >= alpha")
    indistinguishable_pct: Interval
    auc: Interval = Field(description="forget-vs-test AUC of the membership score (percent)")


class CertificateEvidence(Document):
    score: str = Field(description="which membership score: log_odds_confidence or rmia")
    alpha: float = Field(description="the per-sample level")
    current: EvidenceBrief = Field(description="the samples this version forgot")
    union: EvidenceBrief | None = Field(description="every sample forgotten so far; null for version 2")


class CertificateSummary(Document):
    """What a certificate attests about one version (kind unlearning.certificate/2); signed as its RFC 8785 form."""

    kind: Literal["unlearning.certificate/2"]
    statement: str = Field(description="what the certificate attests, and that it is not a proof of deletion")
    verdict: Verdict = Field(description="the audit's verdict, as the report states it")
    failed_checks: list[str]
    model_id: str = Field(json_schema_extra={"format": "uuid"})
    version: int
    parent_version: int | None
    request_ids: list[str] = Field(description="the deletion requests whose samples this version forgot")
    method: str | None = Field(description="the unlearning method")
    parent_sha256: str | None = Field(description="sha256 of the parent version's checkpoint")
    sha256: str | None = Field(description="sha256 of this version's checkpoint (GET .../checkpoint's ETag)")
    metrics: CertificateMetrics
    rmia_reference_models: int | None = Field(description="reference models of the RMIA audit; null without RMIA")
    headline: str | None = Field(description="the report's plain-language summary; null for reports of schema /1")
    inconclusive_checks: list[str]
    evidence: CertificateEvidence | None = Field(
        description="the per-sample evidence in short; null for reports of schema /1 (before per-sample evidence)"
    )
    report_sha256: str = Field(description="sha256 of the audit report's RFC 8785 form (GET .../audit)")
    issued_at: InstantText = Field(description="when it was signed (the service signs on every read), UTC")


class CertificateRead(BaseModel):
    summary: CertificateSummary = Field(
        description="what is attested; signed as its RFC 8785 canonical JSON; summary.report_sha256 is the sha256 "
        "of the audit report's RFC 8785 form"
    )
    signature: str = Field(description="Ed25519 signature of the summary's RFC 8785 canonical JSON, base64")
    algorithm: Literal["Ed25519"]
    canonicalization: Literal["RFC8785"] = Field(
        description="how the signed bytes are made from the summary: RFC 8785 (JSON Canonicalization Scheme)"
    )
    key_id: str = Field(description="which key signed it (see GET /v1/signing-key)")


class SampleEvidenceRead(BaseModel):
    id: str = Field(description="the forgotten sample's ID")
    set: str = Field(description='"current" for this version\'s samples, else the earlier version that forgot it, e.g. "v2"')
    score: float = Field(description="membership score, higher = more member-like")
    p_value: float = Field(description="share of never-seen test samples that score at least as high (with +1 smoothing)")
    indistinguishable: bool = Field(description="p_value >= alpha: the sample looks like data the model never saw")


class SampleEvidenceList(BaseModel):
    """Every sample forgotten up to this version, with its own membership evidence, as this version scores it."""

    model_id: str
    version: int
    score: str = Field(description="which membership score: log_odds_confidence or rmia")
    score_description: str
    alpha: float = Field(description="the per-sample level")
    samples: list[SampleEvidenceRead]


# ---- the audit report (unlearning.audit.report.build_report) ----


class SetEvidence(Document):
    """What the per-sample p-values of one forgotten set say, against never-seen data."""

    n: int
    indistinguishable: int = Field(description="samples whose p-value is >= alpha: they look never seen")
    indistinguishable_pct: Interval
    expected_pct_if_never_seen: float = Field(description="the share never-seen data would give, 100 x (1 - alpha)")
    binomial_p: float = Field(description="P(as few look never seen) were the set never-seen data: small = members remain")
    auc: Interval = Field(description="forget-vs-test AUC of the membership score (percent; 50 = indistinguishable)")


class AuditEvidence(Document):
    score: str = Field(description="which membership score: log_odds_confidence or rmia")
    score_description: str
    alpha: float = Field(description="the per-sample level")
    current: SetEvidence = Field(description="the samples this version forgot")
    union: SetEvidence | None = Field(description="every sample forgotten so far; null for version 2")
    original: SetEvidence | None = Field(
        description="the same test on the original model, which trained on the samples (the attack's power); null "
        "once the original's checkpoint was destroyed"
    )
    attack_on_original: Literal["detects", "inconclusive", "cannot_tell", "unavailable"]


class SetCount(Document):
    n: int


class LabelledSetCount(SetCount):
    label: str = Field(description="the version that forgot them, e.g. v2")


class AuditData(Document):
    current: SetCount = Field(description="the samples this version forgot")
    earlier: list[LabelledSetCount] = Field(description="the sets forgotten by earlier versions")
    union: SetCount = Field(description="every sample forgotten so far")
    retain_sample: SetCount = Field(description="the sample of the remaining training data measured")
    test: SetCount = Field(description="the never-seen test samples every p-value is computed against")
    seed: int = Field(description="the member-sampling and bootstrap seed")


class RmiaSettings(Document):
    measured: bool = Field(description="whether the RMIA attack ran (it needs reference models)")
    reference_models: int | None
    mode: str | None
    gamma: float | None
    seeds: list[int] = Field(description="the subsample seeds of the RMIA AUC")


class AuditUtility(Document):
    test_acc_drop_vs_parent: Interval = Field(description="test accuracy points lost relative to the parent")
    test_acc_drop_vs_original: Interval | None = Field(
        description="the same relative to the original (or what was recorded of it once it was destroyed); null "
        "when neither exists"
    )


class RetainedExposure(Document):
    change_vs_parent: Interval = Field(description="the remaining data's membership AUC minus the parent's (onion effect)")


class AuditThresholds(Document):
    """The limits the verdict checks (unlearning.audit.report.Thresholds)."""

    auc_center: float
    auc_tolerance: float
    min_indistinguishable_pct: float
    max_test_acc_drop: float
    max_cumulative_test_acc_drop: float
    max_retained_exposure_increase: float


class AuditCheck(Document):
    """One check of a 95% interval against its limit."""

    name: str = Field(description="e.g. indistinguishable.current, forget_auc.union, test_acc_drop_vs_parent")
    description: str
    value: float
    ci_low: float
    ci_high: float
    min: float | None
    max: float | None
    limit: str = Field(description="the limit in words, e.g. 40 <= value <= 60")
    result: Verdict = Field(description="pass: the interval lies within; fail: outside; inconclusive: it straddles")
    passed: bool
    decides: Literal["verdict", "fail_only"] = Field(
        description="verdict: any result counts; fail_only: only a failure counts (an earlier set too small to tell)"
    )
    samples: int
    unit: str
    samples_needed: int | None = Field(description="about how many samples would decide an inconclusive check")
    reason: str


class HistoryEntry(Document):
    """One version's cumulative evidence."""

    version: int | None
    samples: int = Field(description="every sample forgotten up to that version")
    indistinguishable_pct: Interval
    auc: Interval
    verdict: Verdict


class AuditReportRead(Document):
    """A version's audit report (schema unlearning.audit.report/2): per-sample membership evidence for every
    forgotten sample, set-level results with intervals, the comparison with the parent and the original, and a
    verdict against stated thresholds. Percentages throughout; AUCs in percent, 50 = indistinguishable."""

    schema_: Literal["unlearning.audit.report/2"] = Field(alias="schema")
    context: dict[str, Any] = Field(
        description="the process, as the worker ran it: model_id, version, parent_version, parent_sha256, "
        "request_ids, method, hyper_parameters, seeds, code_version, input_sha256 (the parent checkpoint), "
        "output_sha256 (this checkpoint), reference_set (the RMIA reference models used, or why none)"
    )
    headline: str = Field(description="the report in a few plain sentences")
    verdict: Verdict
    reasons: list[str] = Field(description="why, one per check that did not pass")
    failed_checks: list[str]
    inconclusive_checks: list[str]
    data: AuditData
    evidence: AuditEvidence
    per_sample: list[SampleEvidenceRead] = Field(description="every sample forgotten so far, as this version scores it")
    rmia: RmiaSettings
    models: dict[str, dict[str, Any]] = Field(
        description="what was measured on each model, by role (version, parent, original while it exists, "
        "retrained when one was trained): retain_acc, test_acc, test_conf, ci, current, earlier, union "
        "(each set: n, forget_acc, forget_conf, mis, loss_auc, the RMIA AUC with reference models, ci, "
        "evidence), retained, score_quantiles"
    )
    utility: AuditUtility
    retained_exposure: RetainedExposure
    gap_to_retrained: dict[str, float] | None = Field(
        description="avg_gap_mis (and avg_gap_rmia with RMIA) to a model retrained without the samples; null "
        "without one"
    )
    thresholds: AuditThresholds
    checks: list[AuditCheck]
    history: list[HistoryEntry] = Field(description="the cumulative evidence of every version, oldest first")


class LegacyAuditReportRead(Document):
    """An audit report written before per-sample evidence (schema unlearning.audit.report/1), served as stored:
    set-level results and pass/fail checks without intervals."""

    schema_: Literal["unlearning.audit.report/1"] = Field(alias="schema")
    context: dict[str, Any] = Field(description="the process, as the worker ran it")
    data: dict[str, Any] = Field(description="current, earlier, retain_sample, test (each with n) and mis_seed")
    rmia: dict[str, Any] = Field(description="measured, reference_models, mode, gamma, seeds")
    models: dict[str, dict[str, Any]] = Field(description="what was measured on each model, by role")
    confidence_bins: list[float] = Field(description="the edges of the confidence histograms")
    gap_to_retrained: dict[str, float] | None
    thresholds: dict[str, Any]
    checks: list[dict[str, Any]]
    failed_checks: list[str]
    verdict: Literal["pass", "fail"]


# GET .../audit answers the report as stored, whichever schema it was written in
AuditReport = Annotated[AuditReportRead | LegacyAuditReportRead, Field(discriminator="schema_")]
