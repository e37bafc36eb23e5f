"""The audit report of one unlearned model version: per-sample membership evidence for every forgotten sample,
set-level results with intervals that know their sample size, the comparison with the parent and the
original, and a verdict (pass, fail or inconclusive) against stated thresholds; as a JSON-able dict, an
evidence figure (PNG) and a self-contained HTML page (unlearning.audit.page).

The report attests a process and its evidence (what was measured, on what, with which attack); it is not a
mathematical proof that the samples' influence is gone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from sklearn.svm import SVC

from unlearning.audit import evidence as ev
from unlearning.audit import stats
from unlearning.audit.evaluate import RmiaAudit, evaluate, gaps
from unlearning.audit.metrics import accuracy, predict_logits, true_class_prob
from unlearning.audit.mis import SVC_C, SVC_GAMMA, SVC_KERNEL
from unlearning.audit.plots import evidence_figure, to_png_bytes
from unlearning.imageset import ImageSet

REPORT_SCHEMA = "unlearning.audit.report/2"
RMIA_SEEDS = (0, 1, 2)  # RmiaAudit.ft_auc's subsample seeds (AMUN.md section 6)
MODEL_ROLES = ("version", "parent", "original", "retrained")
UNION = "union"
DISCLAIMER = (
    "This report and any certificate built on it attest a process and its evidence: which samples were "
    "unlearned, by which method and code, with which inputs and outputs, and what the stated membership-"
    "inference attacks measured afterwards. It is not a mathematical proof of deletion; a stronger attack "
    "or more reference models could tell more."
)


@dataclass(frozen=True)
class Thresholds:
    """The limits the verdict checks; stated in every report so that a reader can judge them.

    Each check compares a 95% interval with its limit: pass when the whole interval is within, fail when
    the whole interval is outside, inconclusive when it straddles the limit (too few samples to tell)."""

    # forget-vs-test AUCs (percent) must lie within center +- tolerance; 50 = an attacker cannot tell the
    # forgotten samples from samples the model never saw (a retrained model scores about 50)
    auc_center: float = 50.0
    auc_tolerance: float = 10.0
    # share (percent) of forgotten samples whose p-value against never-seen data is at least evidence.ALPHA;
    # never-seen data gives about 95, so 90 allows a few samples that stay member-like
    min_indistinguishable_pct: float = 90.0
    # test accuracy may fall at most this many points below the parent's, and below the original's
    max_test_acc_drop: float = 3.0
    max_cumulative_test_acc_drop: float = 3.0
    # the remaining data's forget-vs-test AUC may rise at most this many points over the parent's: samples
    # that stay must not become more exposed by the unlearning of others (the "onion effect")
    max_retained_exposure_increase: float = 5.0

    def __post_init__(self) -> None:
        for name in ("auc_tolerance", "max_test_acc_drop", "max_cumulative_test_acc_drop",
                     "max_retained_exposure_increase"):  # fmt: skip
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"Thresholds.{name} must be a finite number >= 0, got {value}")
        if not 0.0 <= self.auc_center <= 100.0:
            raise ValueError(f"Thresholds.auc_center must lie in [0, 100] (percent), got {self.auc_center}")
        if not 0.0 <= self.min_indistinguishable_pct <= 100.0:
            raise ValueError(
                f"Thresholds.min_indistinguishable_pct must lie in [0, 100], got {self.min_indistinguishable_pct}"
            )


def build_report(
    *,
    model: nn.Module,
    parent: nn.Module,
    original: nn.Module | None,
    current: ImageSet,
    earlier: list[tuple[str, ImageSet]],
    retain_sample: ImageSet,
    test: ImageSet,
    rmia: RmiaAudit | None,
    retrained: nn.Module | None = None,
    thresholds: Thresholds = Thresholds(),
    context: dict[str, Any],
    history: Sequence[dict[str, Any]] = (),
    seed: int = 0,
    original_recorded: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Measure `model` (the new version) and its comparison models; return the report as a JSON-able dict.

    Inputs: `current` = the samples this version forgot; `earlier` = (label, samples) of every set forgotten
    by an ancestor version, label e.g. "v2"; `retain_sample` = a sample of the remaining training data (none
    of it forgotten); `test` = held-out data the audited models never trained on (with `rmia`, none of it in
    the RMIA population): the never-seen population every p-value is computed against; `history` = the
    cumulative evidence of earlier versions as `history_entry` gave it, oldest first; `seed` = the MIS
    member-sampling and bootstrap seed. `original` = None when the original no longer exists (a service
    destroys it once its retention window ends): the report then measures nothing on it, says so
    (evidence.original None, attack_on_original "unavailable"), and compares test accuracy with
    `original_recorded` = {"test_acc": percent, "source": what measured it}, the original's accuracy on this
    same test set as an earlier report measured it (no comparison, and no such check, without it).
    `context` is copied in unchanged (it must be JSON-able); the service puts there: method,
    hyper_parameters, seeds, code_version, model_id, version, parent_version, request_ids, input_sha256
    (parent checkpoint), output_sha256 (this checkpoint), reference_set (the RMIA reference models used, or
    why none).

    Schema ("unlearning.audit.report/2"; percentages throughout, AUCs in percent, 50 = indistinguishable;
    an Interval is {value, ci_low, ci_high, method}, 95% two-sided):
      schema, context, headline: str (plain language), verdict: "pass" | "fail" | "inconclusive",
      reasons: [str] (why, one per check that did not pass), failed_checks, inconclusive_checks: [str]
      data: {current: {n}, earlier: [{label, n}], union: {n}, retain_sample: {n}, test: {n}, seed}
      evidence: {score, score_description, alpha, current: SetEvidence, union: SetEvidence | None,
                 original: SetEvidence, attack_on_original: "detects" | "inconclusive" | "cannot_tell"}
        SetEvidence: {n, indistinguishable, indistinguishable_pct: Interval, expected_pct_if_never_seen,
                      binomial_p, auc: Interval}      (this version; `original`: the same test on the original
                                                   model, which trained on the samples: the attack's power;
                                                   None, and attack_on_original "unavailable", without it)
      per_sample: [{id, set, score, p_value, indistinguishable}]   every sample forgotten so far ("current"
                                                   or the earlier set's label), this version's scores
      rmia: {measured, reference_models, mode, gamma, seeds}
      models: {version, parent[, original][, retrained]: ModelEntry}
        ModelEntry: {retain_acc, test_acc, test_conf, ci: {retain_acc, test_acc}, current: SetEntry,
                     earlier: [SetEntry], union: SetEntry | None, retained: {auc, indistinguishable_pct},
                     score_quantiles: {forget, remaining, test: {n, mean, p05, p25, median, p75, p95}}}
        SetEntry: {label, n, forget_acc, forget_conf, mis, loss_auc[, rmia_ft_auc, rmia_ft_auc_std,
                   rmia_signal_outside_share], ci: {forget_acc, mis, loss_auc[, rmia_auc]}: [low, high],
                   evidence: SetEvidence}
      utility: {test_acc_drop_vs_parent: Interval, test_acc_drop_vs_original: Interval | None}
      retained_exposure: {change_vs_parent: Interval}    remaining-vs-test AUC, this version minus parent
      gap_to_retrained: {avg_gap_mis[, avg_gap_rmia]} | None   (unlearning.audit.evaluate.gaps)
      thresholds: Thresholds
      checks: [{name, description, value, ci_low, ci_high, min, max, limit, result, passed, decides,
                samples, unit, samples_needed, reason}]
      history: [history_entry], oldest first, this version last
    """
    context = _json_copy(context, "context")
    if len(current) == 0:
        raise ValueError("current is empty: a report needs the samples this version forgot")
    if len(retain_sample) == 0 or len(test) == 0:
        raise ValueError(f"retain_sample ({len(retain_sample)}) and test ({len(test)}) must not be empty")
    _check_sets(current, earlier, retain_sample)
    union = _union(current, earlier) if earlier else None

    models = {"version": model, "parent": parent}
    if original is not None:
        models["original"] = original
    if retrained is not None:
        models["retrained"] = retrained
    measured: dict[str, _Measured] = {}
    done: dict[int, str] = {}  # the parent of version 2 is the original: measure each module once
    for role, net in models.items():
        if id(net) in done:
            measured[role] = measured[done[id(net)]]
            continue
        measured[role] = _measure(net, current, earlier, union, retain_sample, test, rmia, seed)
        done[id(net)] = role

    version = measured["version"]
    if original is not None:
        drop_vs_original = stats.paired_difference(measured["original"].test_correct, version.test_correct,
                                                   seed=seed).as_dict()  # fmt: skip
    elif original_recorded is not None:
        drop_vs_original = _drop_vs_recorded(original_recorded, version.test_correct)
    else:
        drop_vs_original = None
    utility = {
        "test_acc_drop_vs_parent": stats.paired_difference(
            measured["parent"].test_correct, version.test_correct, seed=seed
        ).as_dict(),
        "test_acc_drop_vs_original": drop_vs_original,
    }
    exposure = stats.paired_auc_difference(
        version.scores["remaining"], version.scores["test"],
        measured["parent"].scores["remaining"], measured["parent"].scores["test"], seed=seed,
    )  # fmt: skip
    checks = _checks(measured, utility, exposure, thresholds, n_test=len(test))
    verdict, reasons = _verdict(checks)
    sets = ["current"] * len(current) + [label for label, samples in earlier for _ in range(len(samples))]
    everyone = union if union is not None else current
    per_sample = ev.per_sample_rows(
        everyone.ids, sets, version.forgotten_scores, version.forgotten_p
    )
    original_found = measured["original"].entry["current"]["evidence"] if original is not None else None
    evidence = {
        "score": version.score_name,
        "score_description": ev.SCORE_DESCRIPTIONS[version.score_name],
        "alpha": ev.ALPHA,
        "current": version.entry["current"]["evidence"],
        "union": version.entry["union"]["evidence"] if union is not None else None,
        # the attack's power: the same test on the original model, which did train on these samples
        "original": original_found,
        "attack_on_original": _power(original_found, thresholds) if original_found is not None else "unavailable",
    }
    report = {
        "schema": REPORT_SCHEMA,
        "context": context,
        "headline": _headline(evidence, verdict, checks),
        "verdict": verdict,
        "reasons": reasons,
        "failed_checks": [c["name"] for c in checks if c["result"] == stats.FAIL],
        "inconclusive_checks": [c["name"] for c in checks if c["result"] == stats.INCONCLUSIVE],
        "data": {
            "current": {"n": len(current)},
            "earlier": [{"label": label, "n": len(samples)} for label, samples in earlier],
            "union": {"n": len(everyone)},
            "retain_sample": {"n": len(retain_sample)},
            "test": {"n": len(test)},
            "seed": seed,
        },
        "evidence": evidence,
        "per_sample": per_sample,
        "rmia": {
            "measured": rmia is not None,
            "reference_models": rmia.k if rmia is not None else None,
            "mode": rmia.mode if rmia is not None else None,
            "gamma": float(rmia.gamma) if rmia is not None else None,
            "seeds": list(RMIA_SEEDS),
        },
        "models": {role: m.entry for role, m in measured.items()},
        "utility": utility,
        "retained_exposure": {"change_vs_parent": exposure.as_dict()},
        "gap_to_retrained": gaps(version.raw, measured["retrained"].raw) if retrained is not None else None,
        "thresholds": asdict(thresholds),
        "checks": checks,
    }
    report["history"] = [*history, history_entry(report)]
    # A deep copy through JSON: entries shared between roles become independent, and a NaN is caught here
    return _json_copy(report, "report")


def _drop_vs_recorded(recorded: dict[str, Any], version_correct: np.ndarray) -> dict[str, Any]:
    """Test accuracy lost against the original's recorded accuracy on the same test set: the recorded value is
    taken as exact (it was measured on these very samples), the interval is this version's own."""
    mine = stats.proportion(int(version_correct.sum()), len(version_correct))
    before = float(recorded["test_acc"])
    method = (f"against the original's test accuracy as {recorded.get('source', 'an earlier audit')} recorded it "
              f"(the original no longer exists), taken as exact; this version's {stats.EXACT} interval")  # fmt: skip
    return stats.Interval(before - mine.value, before - mine.high, before - mine.low, method).as_dict()


def history_entry(report: dict[str, Any]) -> dict[str, Any]:
    """One version's cumulative evidence, as the next versions' reports list it."""
    cumulative = report["evidence"]["union"] or report["evidence"]["current"]
    return {
        "version": report["context"].get("version"),
        "samples": cumulative["n"],
        "indistinguishable_pct": cumulative["indistinguishable_pct"],
        "auc": cumulative["auc"],
        "verdict": report["verdict"],
    }


# ---- measuring one model ----


@dataclass
class _Measured:
    entry: dict[str, Any]  # the model's ModelEntry
    raw: dict[str, float]  # evaluate()'s flat metrics of the current set, for gaps()
    score_name: str
    scores: dict[str, np.ndarray]  # "current", each earlier label, "remaining", "test"
    forgotten_scores: np.ndarray  # current, then every earlier set in order (the union's order)
    forgotten_p: np.ndarray
    test_correct: np.ndarray  # 1.0 where the model classifies the test sample correctly


def _measure(
    net: nn.Module,
    current: ImageSet,
    earlier: list[tuple[str, ImageSet]],
    union: ImageSet | None,
    retain_sample: ImageSet,
    test: ImageSet,
    rmia: RmiaAudit | None,
    seed: int,
) -> _Measured:
    metrics, conf = evaluate(net, current, retain_sample, test, rmia=rmia, seed=seed)
    named = {"current": current, **dict(earlier), "remaining": retain_sample}
    logits = {name: predict_logits(net, samples.x) for name, samples in named.items()}
    test_logits = predict_logits(net, test.x)
    score_name = ev.RMIA if rmia is not None else ev.LOG_ODDS
    scores = evidence_scores(net, named, test, rmia, logits=logits, test_logits=test_logits)
    test_scores = scores["test"]
    mis_attack = _fit_mis_attack(conf.retain, conf.test, seed)
    # the loss attack's held-out scores (without RMIA, the evidence scores themselves)
    loss_test = test_scores if rmia is None else ev.log_odds_confidence(test_logits, test.y)

    def set_entry(label: str, samples: ImageSet, z: torch.Tensor, s: np.ndarray) -> dict[str, Any]:
        prob = true_class_prob(z, samples.y)
        correct = int((z.argmax(dim=1) == samples.y.cpu()).sum())
        mis_count = int(np.sum(mis_attack.predict(prob[:, None]) == 0))
        loss = stats.auc(ev.log_odds_confidence(z, samples.y), loss_test, seed=seed)
        # without RMIA the evidence score is the loss attack's own (log-odds rank like the loss): one AUC
        found = ev.set_evidence(s, test_scores, seed=seed, auc=loss if rmia is None else None)
        entry = {
            "label": label,
            "n": len(samples),
            "forget_acc": accuracy(z, samples.y),
            "forget_conf": float(prob.mean()),
            "mis": 100.0 * mis_count / len(samples),
            "loss_auc": loss.value,
            "ci": {
                "forget_acc": _ci(stats.proportion(correct, len(samples))),
                "mis": _ci(stats.proportion(mis_count, len(samples))),
                "loss_auc": _ci(loss),
            },
            "evidence": found.as_dict(),
        }
        if rmia is not None:
            entry["rmia_ft_auc"], entry["rmia_ft_auc_std"] = rmia.ft_auc(
                net, samples, z, test, test_logits, seeds=RMIA_SEEDS
            )
            entry["rmia_signal_outside_share"] = rmia.last_outside_share
            entry["ci"]["rmia_auc"] = _ci(found.auc)  # the full-set RMIA AUC's interval
        return entry

    current_entry = set_entry("current", current, logits["current"], scores["current"])
    earlier_entries = [set_entry(label, samples, logits[label], scores[label]) for label, samples in earlier]
    forgotten_scores = np.concatenate([scores["current"]] + [scores[label] for label, _ in earlier])
    union_entry = None
    if union is not None:
        union_logits = torch.cat([logits["current"]] + [logits[label] for label, _ in earlier])
        union_entry = set_entry(UNION, union, union_logits, forgotten_scores)
    test_correct = (test_logits.argmax(dim=1) == test.y.cpu()).double().numpy()
    retained_p = ev.p_values(scores["remaining"], test_scores)
    entry = {
        "retain_acc": metrics["retain_acc"],
        "test_acc": metrics["test_acc"],
        "test_conf": metrics["test_conf"],
        "ci": {
            "retain_acc": _ci(stats.proportion(round(metrics["retain_acc"] * len(retain_sample) / 100), len(retain_sample))),
            "test_acc": _ci(stats.proportion(int(test_correct.sum()), len(test))),
        },
        "current": current_entry,
        "earlier": earlier_entries,
        "union": union_entry,
        "retained": {
            "auc": stats.auc(scores["remaining"], test_scores, seed=seed).as_dict(),
            "indistinguishable_pct": stats.proportion(int(np.sum(retained_p >= ev.ALPHA)), len(retained_p)).as_dict(),
        },
        "score_quantiles": {
            "forget": _quantiles(scores["current"]),
            "remaining": _quantiles(scores["remaining"]),
            "test": _quantiles(test_scores),
        },
    }
    return _Measured(
        entry=entry,
        raw=metrics,
        score_name=score_name,
        scores=scores,
        forgotten_scores=forgotten_scores,
        forgotten_p=ev.p_values(forgotten_scores, test_scores),
        test_correct=test_correct,
    )


def evidence_scores(net: nn.Module, named: dict[str, ImageSet], test: ImageSet, rmia: RmiaAudit | None, *,
                    logits: dict[str, torch.Tensor] | None = None,
                    test_logits: torch.Tensor | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """The membership score (RMIA's with reference models, else the log-odds of the true-class confidence) of
    every sample of each named set, and of the never-seen test samples under "test"."""
    logits = logits if logits is not None else {name: predict_logits(net, s.x) for name, s in named.items()}
    test_logits = test_logits if test_logits is not None else predict_logits(net, test.x)
    if rmia is None:
        out = {name: ev.log_odds_confidence(logits[name], samples.y) for name, samples in named.items()}
        out["test"] = ev.log_odds_confidence(test_logits, test.y)
        return out
    out: dict[str, np.ndarray] = {}
    for name, samples in named.items():
        out[name], test_scores = rmia.scores(net, samples, logits[name], test, test_logits)
    out["test"] = test_scores  # the same for every set: the test samples' scores do not depend on it
    return out


def _ci(interval: stats.Interval) -> list[float]:
    return [interval.low, interval.high]


def _quantiles(values: np.ndarray) -> dict[str, Any]:
    arr = np.asarray(values, dtype=np.float64)
    p05, p25, median, p75, p95 = np.quantile(arr, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {"n": len(arr), "mean": float(arr.mean()), "p05": float(p05), "p25": float(p25),
            "median": float(median), "p75": float(p75), "p95": float(p95)}  # fmt: skip


def _union(current: ImageSet, earlier: list[tuple[str, ImageSet]]) -> ImageSet:
    parts = [current] + [samples for _, samples in earlier]
    device = current.x.device
    return ImageSet(
        torch.cat([p.x.to(device) for p in parts]),
        torch.cat([p.y.to(device) for p in parts]),
        np.concatenate([p.ids for p in parts]),
    )


def _fit_mis_attack(retain_prob: np.ndarray, test_prob: np.ndarray, seed: int) -> SVC:
    """mis.mis_score's classifier, fitted once so that every set is scored without refitting.

    The same members (drawn with the same seed), constants and features as mis_score: a report test checks
    that it scores a set exactly as evaluate() does. Refitting per set would cost seconds each on a 10k
    test set.
    """
    rng = np.random.default_rng(seed)
    n_members = min(len(test_prob), len(retain_prob))
    members = retain_prob[rng.choice(len(retain_prob), size=n_members, replace=False)]
    x = np.concatenate([members, test_prob])[:, None]  # n, 1
    labels = np.concatenate([np.ones(n_members), np.zeros(len(test_prob))])
    return SVC(C=SVC_C, gamma=SVC_GAMMA, kernel=SVC_KERNEL).fit(x, labels)


def _json_copy(value: Any, name: str) -> Any:
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} is not JSON-able: {exc}") from exc


def _check_sets(current: ImageSet, earlier: list[tuple[str, ImageSet]], retain_sample: ImageSet) -> None:
    # Overlaps mean the caller assembled the sets wrongly; the numbers would then be evidence of nothing.
    labels = [label for label, _ in earlier]
    if len(set(labels)) != len(labels) or any(not isinstance(label, str) or not label for label in labels):
        raise ValueError(f"earlier set labels must be distinct non-empty strings, got {labels}")
    reserved = {"current", UNION, "remaining", "test"} & set(labels)
    if reserved:
        raise ValueError(f"earlier set labels {sorted(reserved)} are reserved names")
    forgotten = {"current": set(current.ids.tolist())}
    for label, samples in earlier:
        if len(samples) == 0:
            raise ValueError(f"earlier set {label!r} is empty")
        forgotten[label] = set(samples.ids.tolist())
    remaining = set(retain_sample.ids.tolist())
    names = list(forgotten)
    for i, name in enumerate(names):
        inside = forgotten[name] & remaining
        if inside:
            raise ValueError(
                f"retain_sample holds {len(inside)} sample(s) of forgotten set {name!r}, e.g. {sorted(inside)[:5]}"
            )
        for other in names[i + 1 :]:
            both = forgotten[name] & forgotten[other]
            if both:
                raise ValueError(
                    f"forgotten sets {name!r} and {other!r} share {len(both)} sample(s), e.g. {sorted(both)[:5]}"
                )


# ---- checks and the verdict ----


def _limit(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"{low:g} <= value <= {high:g}"
    if high is not None:
        return f"value <= {high:g}"
    return f"value >= {low:g}"


def _check(name: str, description: str, interval: dict[str, Any], low: float | None, high: float | None, *,
           samples: int, unit: str, share: bool, decides: str) -> dict[str, Any]:  # fmt: skip
    """One check of a 95% interval against [low, high]; `decides` = "verdict" (any result counts) or
    "fail_only" (only a decided failure counts: an earlier set too small to tell does not hold the verdict
    back, the union of all forgotten samples carries the cumulative evidence)."""
    iv = stats.Interval(interval["value"], interval["ci_low"], interval["ci_high"], interval["method"])
    result = stats.decide(iv, low, high)
    needed = None
    if result == stats.INCONCLUSIVE:
        needed = (stats.samples_needed_for_share(iv.value, low, high) if share
                  else stats.samples_needed_for_interval(iv, samples, low, high))  # fmt: skip
    limit = _limit(low, high)
    measured = f"{description}: {iv.value:.1f} (95% CI {iv.low:.1f} to {iv.high:.1f}) from {samples} {unit}"
    if result == stats.PASS:
        reason = f"{measured}, within {limit}"
    elif result == stats.FAIL:
        reason = f"{measured}, outside {limit}"
    elif needed is None:
        reason = f"{measured} straddles {limit}, and the estimate sits on the limit: more {unit} would not decide"
    else:
        reason = f"{measured} straddles {limit}: too few to decide; about {needed} {unit} would be needed"
    return {
        "name": name,
        "description": description,
        "value": iv.value,
        "ci_low": iv.low,
        "ci_high": iv.high,
        "min": low,
        "max": high,
        "limit": limit,
        "result": result,
        "passed": result == stats.PASS,
        "decides": decides,
        "samples": samples,
        "unit": unit,
        "samples_needed": needed,
        "reason": reason,
    }


def _checks(measured: dict[str, _Measured], utility: dict[str, Any], exposure: stats.Interval, t: Thresholds,
            *, n_test: int) -> list[dict[str, Any]]:  # fmt: skip
    version = measured["version"].entry
    band = (t.auc_center - t.auc_tolerance, t.auc_center + t.auc_tolerance)
    share = (t.min_indistinguishable_pct, None)
    sets = [("current", "the samples this version forgot", version["current"], "verdict")]
    if version["union"] is not None:
        sets.append((UNION, "every sample forgotten so far", version[UNION], "verdict"))
        sets += [(f"earlier[{e['label']}]", f"the samples forgotten by {e['label']}", e, "fail_only")
                 for e in version["earlier"]]  # fmt: skip
    checks = []
    for key, what, entry, decides in sets:
        found = entry["evidence"]
        checks.append(_check(f"indistinguishable.{key}", f"share of {what} that look never seen (p >= {ev.ALPHA:g})",
                             found["indistinguishable_pct"], *share, samples=entry["n"], unit="forgotten samples",
                             share=True, decides=decides))  # fmt: skip
        checks.append(_check(f"forget_auc.{key}", f"forget-vs-test AUC of {what}", found["auc"], *band,
                             samples=entry["n"], unit="forgotten samples", share=False, decides=decides))  # fmt: skip
    checks.append(_check("test_acc_drop_vs_parent", "test accuracy points lost relative to the parent version",
                         utility["test_acc_drop_vs_parent"], None, t.max_test_acc_drop, samples=n_test,
                         unit="test samples", share=False, decides="verdict"))  # fmt: skip
    if utility["test_acc_drop_vs_original"] is not None:  # None: the original is gone and nothing was recorded
        checks.append(_check("test_acc_drop_vs_original",
                             "test accuracy points lost relative to the original (version 1)",
                             utility["test_acc_drop_vs_original"], None, t.max_cumulative_test_acc_drop,
                             samples=n_test, unit="test samples", share=False, decides="verdict"))  # fmt: skip
    checks.append(_check("retained_exposure_increase",
                         "rise of the remaining data's membership AUC over the parent's (onion effect)",
                         exposure.as_dict(), None, t.max_retained_exposure_increase, samples=n_test,
                         unit="test samples", share=False, decides="verdict"))  # fmt: skip
    return checks


def _verdict(checks: list[dict[str, Any]]) -> tuple[str, list[str]]:
    failed = [c for c in checks if c["result"] == stats.FAIL]
    undecided = [c for c in checks if c["result"] == stats.INCONCLUSIVE and c["decides"] == "verdict"]
    if failed:
        return stats.FAIL, [c["reason"] for c in failed]
    if undecided:
        return stats.INCONCLUSIVE, [c["reason"] for c in undecided]
    return stats.PASS, []


def _power(found: dict[str, Any], t: Thresholds) -> str:
    """What the share and AUC checks say of the original model, which trained on the samples: "detects"
    (either fails: the test can see membership), "cannot_tell" (both pass: it cannot, even there) or
    "inconclusive"."""

    def interval(d: dict[str, Any]) -> stats.Interval:
        return stats.Interval(d["value"], d["ci_low"], d["ci_high"], d["method"])

    band = (t.auc_center - t.auc_tolerance, t.auc_center + t.auc_tolerance)
    results = {stats.decide(interval(found["indistinguishable_pct"]), t.min_indistinguishable_pct, None),
               stats.decide(interval(found["auc"]), *band)}  # fmt: skip
    if stats.FAIL in results:
        return "detects"
    return "cannot_tell" if results == {stats.PASS} else stats.INCONCLUSIVE


def _share_sentence(found: dict[str, Any]) -> str:
    share = found["indistinguishable_pct"]
    return f"{found['indistinguishable']} of {found['n']} ({share['value']:.0f}%, 95% CI {share['ci_low']:.0f}-{share['ci_high']:.0f}%)"


def _headline(evidence: dict[str, Any], verdict: str, checks: list[dict[str, Any]]) -> str:
    """The report in a few plain sentences, for a reviewer who reads nothing else."""
    expected = 100 * (1 - evidence["alpha"])
    text = (f"{_share_sentence(evidence['current'])} of the samples this version forgot look like data the model "
            f"never saw (about {expected:.0f}% of never-seen data does).")  # fmt: skip
    if evidence["union"] is not None:
        text += f" Of all samples forgotten so far: {_share_sentence(evidence['union'])}."
    original = evidence["original"]
    if original is None:
        text += (" The original model no longer exists (its checkpoint was destroyed once its retention window "
                 "ended), so the same test was not run on it.")  # fmt: skip
    else:
        text += (f" On the original model the same test finds {original['indistinguishable_pct']['value']:.0f}% "
                 f"(AUC {original['auc']['value']:.1f})")  # fmt: skip
        text += {
            "detects": ", so it can see these samples when a model remembers them.",
            "inconclusive": ".",
            "cannot_tell": ": it cannot tell these samples from never-seen data even there, so its result says "
            "little about forgetting; reference models (RMIA) make a stronger test.",
        }[evidence["attack_on_original"]]
    failed = [c for c in checks if c["result"] == stats.FAIL]
    undecided = [c for c in checks if c["result"] == stats.INCONCLUSIVE and c["decides"] == "verdict"]
    if verdict == stats.PASS:
        return text + " Verdict: pass, every check within its limit."
    if verdict == stats.FAIL:
        c = failed[0]
        return text + f" Verdict: fail: {c['description']} is {c['value']:.1f} (95% CI {c['ci_low']:.1f}-{c['ci_high']:.1f}), outside {c['limit']}."
    c = undecided[0]
    if c["samples_needed"] is not None:
        why = f"{c['samples']} {c['unit']} are too few to decide ({c['description']}); about {c['samples_needed']} would be needed"
    else:
        why = f"{c['description']} sits on its limit ({c['limit']})"
    return text + f" Verdict: inconclusive: {why}."


# ---- the evidence figure ----


def evidence_png(
    *,
    model: nn.Module,
    parent: nn.Module,
    original: nn.Module | None,
    current: ImageSet,
    retain_sample: ImageSet,
    test: ImageSet,
    earlier: Sequence[tuple[str, ImageSet]] = (),
    rmia: RmiaAudit | None = None,
    versions: dict[str, int | None] | None = None,
    title: str | None = None,
) -> bytes:
    """PNG of the membership score the report uses (RMIA's with `rmia`, else the log-odds of the true-class
    confidence), forget vs never-seen test vs remaining, for the original (unless it is None: it no longer
    exists), the parent (when it is not the original) and this version, one panel each.

    `versions` gives the version numbers for the panel titles: {"version": n, "parent": n}."""
    versions = versions or {}
    roles = [("original", original)] if original is not None else []
    if parent is not original:
        roles.append(("parent", parent))
    roles.append(("version", model))
    named = {"current": current, "remaining": retain_sample, **dict(earlier)}
    panels = {}
    for role, net in roles:
        scores = evidence_scores(net, named, test, rmia)
        sets = {"test (never seen)": scores["test"], "remaining": scores["remaining"]}
        if earlier:
            sets["forgotten earlier"] = np.concatenate([scores[label] for label, _ in earlier])
        sets["forgotten now"] = scores["current"]
        panels[_panel_title(role, versions, parent is original)] = sets
    label = "RMIA score" if rmia is not None else "log-odds of true-class confidence"
    return to_png_bytes(evidence_figure(panels, alpha=ev.ALPHA, title=title, xlabel=label))


def _panel_title(role: str, versions: dict[str, int | None], parent_is_original: bool) -> str:
    if role == "version":
        number = versions.get("version")
        return "this version" + (f" (v{number})" if number is not None else "")
    if role == "parent":
        number = versions.get("parent")
        return "parent" + (f" (v{number})" if number is not None else "")
    return "original (v1), the parent" if parent_is_original else "original (v1)"
