"""The audit report of one unlearned model version: the evidence, compared with its parent and the original,
checked against stated thresholds, as a JSON-able dict, a confidence-histogram PNG and a self-contained HTML page.

The report attests a process and its evidence (what was measured, on what, with which attack); it is not a
mathematical proof that the samples' influence is gone.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch.nn as nn
from sklearn.svm import SVC

from unlearning.audit.evaluate import RmiaAudit, evaluate, gaps
from unlearning.audit.metrics import (
    accuracy,
    cross_entropy_per_sample,
    loss_threshold_auc,
    predict_logits,
    true_class_prob,
)
from unlearning.audit.mis import SVC_C, SVC_GAMMA, SVC_KERNEL
from unlearning.audit.plots import confidence_figure, to_png_bytes
from unlearning.imageset import ImageSet

REPORT_SCHEMA = "unlearning.audit.report/1"
RMIA_SEEDS = (0, 1, 2)  # RmiaAudit.ft_auc's subsample seeds (AMUN.md section 6)
CONFIDENCE_BINS = 20  # histogram bins on [0, 1] kept in the JSON; the PNG shows the same bins
MODEL_ROLES = ("version", "parent", "original", "retrained")
ROLE_TITLES = {
    "version": "this version",
    "parent": "parent version",
    "original": "original (version 1)",
    "retrained": "retrained reference",
}
DISCLAIMER = (
    "This report and any certificate built on it attest a process and its evidence: which samples were "
    "unlearned, by which method and code, with which inputs and outputs, and what the stated membership-"
    "inference attacks measured afterwards. It is not a mathematical proof of deletion; a stronger attack "
    "or more reference models could tell more."
)


@dataclass(frozen=True)
class Thresholds:
    """The limits the verdict checks; stated in every report so that a reader can judge them."""

    # forget-vs-test AUCs (percent) must lie within center +- tolerance; 50 = an attacker cannot tell the
    # forgotten samples from samples the model never saw (a retrained model scores about 50)
    auc_center: float = 50.0
    loss_auc_tolerance: float = 10.0  # for the current and every earlier forgotten set
    rmia_auc_tolerance: float = 10.0  # only checked when RMIA was measured
    # test accuracy may fall at most this many percentage points below the parent's
    max_test_acc_drop: float = 3.0

    def __post_init__(self) -> None:
        for name in ("loss_auc_tolerance", "rmia_auc_tolerance", "max_test_acc_drop"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"Thresholds.{name} must be a finite number >= 0, got {value}")
        if not 0.0 <= self.auc_center <= 100.0:
            raise ValueError(f"Thresholds.auc_center must lie in [0, 100] (percent), got {self.auc_center}")


def build_report(
    *,
    model: nn.Module,
    parent: nn.Module,
    original: nn.Module,
    current: ImageSet,
    earlier: list[tuple[str, ImageSet]],
    retain_sample: ImageSet,
    test: ImageSet,
    rmia: RmiaAudit | None,
    retrained: nn.Module | None = None,
    thresholds: Thresholds = Thresholds(),
    context: dict[str, Any],
    seed: int = 0,
) -> dict[str, Any]:
    """Measure `model` (the new version) and its comparison models; return the report as a JSON-able dict.

    Inputs: `current` = the samples this version forgot; `earlier` = (label, samples) of every set forgotten
    by an ancestor version, label e.g. the request id; `retain_sample` = a sample of the remaining training
    data (none of it forgotten); `test` = held-out data (with `rmia`, none of it in the RMIA population);
    `seed` = the MIS member-sampling seed. `context` is copied in unchanged (it must be JSON-able); the
    service puts there: method, hyper_parameters, seeds, code_version, model_id, version, parent_version,
    request_ids, input_sha256 (parent checkpoint), output_sha256 (this checkpoint).

    Schema ("unlearning.audit.report/1"; percentages throughout, AUCs in percent, 50 = indistinguishable):
      schema: str
      context: dict                              the caller's context, verbatim
      data: {current: {n}, earlier: [{label, n}], retain_sample: {n}, test: {n}, mis_seed: int}
      rmia: {measured: bool, reference_models: int | None, mode: str | None, gamma: float | None,
             seeds: [int]}
      models: {version, parent, original[, retrained]: ModelEntry}
        ModelEntry: {retain_acc, test_acc, test_conf, current: SetEntry, earlier: [SetEntry],
                     confidence: {forget, remaining, test: ConfidenceStats}}
        SetEntry: {label, n, forget_acc, forget_conf, mis, loss_auc
                   [, rmia_ft_auc, rmia_ft_auc_std, rmia_signal_outside_share]   (when rmia is given)}
        ConfidenceStats: {n, mean, std, min, p05, p25, median, p75, p95, max, counts: [int] * bins}
      confidence_bins: [float]                    the histogram bin edges on [0, 1]
      gap_to_retrained: {avg_gap_mis[, avg_gap_rmia]} | None   (unlearning.audit.evaluate.gaps)
      thresholds: {auc_center, loss_auc_tolerance, rmia_auc_tolerance, max_test_acc_drop}
      checks: [{name, description, value, min, max, limit, passed}]   min/max None = unbounded
      failed_checks: [str]
      verdict: "pass" | "fail"                   "pass" only if every check passed
    """
    context = _json_copy(context, "context")
    if len(current) == 0:
        raise ValueError("current is empty: a report needs the samples this version forgot")
    if len(retain_sample) == 0 or len(test) == 0:
        raise ValueError(f"retain_sample ({len(retain_sample)}) and test ({len(test)}) must not be empty")
    _check_sets(current, earlier, retain_sample)

    models = {"version": model, "parent": parent, "original": original}
    if retrained is not None:
        models["retrained"] = retrained
    entries: dict[str, dict[str, Any]] = {}
    raw: dict[str, dict[str, float]] = {}
    done: dict[int, str] = {}  # the parent of version 2 is the original: measure each module once
    for role, net in models.items():
        if id(net) in done:
            entries[role], raw[role] = entries[done[id(net)]], raw[done[id(net)]]
            continue
        entries[role], raw[role] = _measure(net, current, earlier, retain_sample, test, rmia, seed)
        done[id(net)] = role

    gap = gaps(raw["version"], raw["retrained"]) if retrained is not None else None
    checks = _checks(entries, rmia is not None, thresholds)
    failed = [check["name"] for check in checks if not check["passed"]]
    report = {
        "schema": REPORT_SCHEMA,
        "context": context,
        "data": {
            "current": {"n": len(current)},
            "earlier": [{"label": label, "n": len(samples)} for label, samples in earlier],
            "retain_sample": {"n": len(retain_sample)},
            "test": {"n": len(test)},
            "mis_seed": seed,
        },
        "rmia": {
            "measured": rmia is not None,
            "reference_models": rmia.k if rmia is not None else None,
            "mode": rmia.mode if rmia is not None else None,
            "gamma": float(rmia.gamma) if rmia is not None else None,
            "seeds": list(RMIA_SEEDS),
        },
        "models": entries,
        "confidence_bins": _bin_edges().tolist(),
        "gap_to_retrained": gap,
        "thresholds": asdict(thresholds),
        "checks": checks,
        "failed_checks": failed,
        "verdict": "pass" if not failed else "fail",
    }
    # A deep copy through JSON: entries shared between roles become independent, and a NaN is caught here
    return _json_copy(report, "report")


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


def _measure(
    net: nn.Module,
    current: ImageSet,
    earlier: list[tuple[str, ImageSet]],
    retain_sample: ImageSet,
    test: ImageSet,
    rmia: RmiaAudit | None,
    seed: int,
) -> tuple[dict[str, Any], dict[str, float]]:
    """One model's entry, and evaluate()'s flat metrics of the current set (what gaps() compares)."""
    metrics, conf = evaluate(net, current, retain_sample, test, rmia=rmia, seed=seed)
    test_logits = predict_logits(net, test.x)
    test_loss = cross_entropy_per_sample(test_logits, test.y)
    current_entry = {
        "label": "current",
        "n": len(current),
        "forget_acc": metrics["forget_acc"],
        "forget_conf": metrics["forget_conf"],
        "mis": metrics["mis"],
        "loss_auc": _loss_auc(net, current, test_loss),
    }
    if rmia is not None:
        current_entry["rmia_ft_auc"] = metrics["rmia_ft_auc"]
        current_entry["rmia_ft_auc_std"] = metrics["rmia_ft_auc_std"]
        current_entry["rmia_signal_outside_share"] = metrics["rmia_signal_outside_share"]

    earlier_entries = []
    if earlier:
        mis_attack = _fit_mis_attack(conf.retain, conf.test, seed)
        for label, samples in earlier:
            logits = predict_logits(net, samples.x)
            forget_prob = true_class_prob(logits, samples.y)
            entry = {
                "label": label,
                "n": len(samples),
                "forget_acc": accuracy(logits, samples.y),
                "forget_conf": float(forget_prob.mean()),
                "mis": 100.0 * float(np.mean(mis_attack.predict(forget_prob[:, None]) == 0)),
                "loss_auc": 100.0 * loss_threshold_auc(cross_entropy_per_sample(logits, samples.y), test_loss),
            }
            if rmia is not None:
                entry["rmia_ft_auc"], entry["rmia_ft_auc_std"] = rmia.ft_auc(
                    net, samples, logits, test, test_logits, seeds=RMIA_SEEDS
                )
                entry["rmia_signal_outside_share"] = rmia.last_outside_share
            earlier_entries.append(entry)

    entry = {
        "retain_acc": metrics["retain_acc"],
        "test_acc": metrics["test_acc"],
        "test_conf": metrics["test_conf"],
        "current": current_entry,
        "earlier": earlier_entries,
        "confidence": {
            "forget": _confidence_stats(conf.forget),
            "remaining": _confidence_stats(conf.retain),
            "test": _confidence_stats(conf.test),
        },
    }
    return entry, metrics


def _loss_auc(net: nn.Module, samples: ImageSet, test_loss: np.ndarray) -> float:
    loss = cross_entropy_per_sample(predict_logits(net, samples.x), samples.y)
    return 100.0 * loss_threshold_auc(loss, test_loss)


def _fit_mis_attack(retain_prob: np.ndarray, test_prob: np.ndarray, seed: int) -> SVC:
    """mis.mis_score's classifier, fitted once so that every earlier set is scored without refitting.

    The same members (drawn with the same seed), constants and features as mis_score: a report test checks
    that it scores the current set exactly as evaluate() does. Refitting per set would cost seconds each
    on a 10k test set.
    """
    rng = np.random.default_rng(seed)
    n_members = min(len(test_prob), len(retain_prob))
    members = retain_prob[rng.choice(len(retain_prob), size=n_members, replace=False)]
    x = np.concatenate([members, test_prob])[:, None]  # n, 1
    labels = np.concatenate([np.ones(n_members), np.zeros(len(test_prob))])
    return SVC(C=SVC_C, gamma=SVC_GAMMA, kernel=SVC_KERNEL).fit(x, labels)


def _bin_edges() -> np.ndarray:
    return np.linspace(0.0, 1.0, CONFIDENCE_BINS + 1)


def _confidence_stats(values: np.ndarray) -> dict[str, Any]:
    # The per-sample arrays are as long as the sets (10k+ values); quantiles and bin counts describe them
    # well enough for a reader, and the PNG shows the shapes.
    arr = np.asarray(values, dtype=np.float64)
    p05, p25, median, p75, p95 = np.quantile(arr, [0.05, 0.25, 0.5, 0.75, 0.95])
    counts, _ = np.histogram(arr, bins=_bin_edges())
    return {
        "n": len(arr),
        "mean": float(arr.mean()),
        "std": float(arr.std()),
        "min": float(arr.min()),
        "p05": float(p05),
        "p25": float(p25),
        "median": float(median),
        "p75": float(p75),
        "p95": float(p95),
        "max": float(arr.max()),
        "counts": counts.astype(int).tolist(),
    }


def _check(name: str, description: str, value: float, low: float | None, high: float | None) -> dict[str, Any]:
    if low is not None and high is not None:
        limit = f"{low:g} <= value <= {high:g}"
    elif high is not None:
        limit = f"value <= {high:g}"
    else:
        limit = f"value >= {low:g}"
    passed = math.isfinite(value) and (low is None or value >= low) and (high is None or value <= high)
    return {
        "name": name,
        "description": description,
        "value": value,
        "min": low,
        "max": high,
        "limit": limit,
        "passed": bool(passed),
    }


def _checks(entries: dict[str, dict[str, Any]], rmia_measured: bool, t: Thresholds) -> list[dict[str, Any]]:
    version = entries["version"]
    loss_band = (t.auc_center - t.loss_auc_tolerance, t.auc_center + t.loss_auc_tolerance)
    rmia_band = (t.auc_center - t.rmia_auc_tolerance, t.auc_center + t.rmia_auc_tolerance)
    sets = [("current", "the samples forgotten by this version", version["current"])] + [
        (f"earlier[{entry['label']}]", f"the samples forgotten earlier ({entry['label']})", entry)
        for entry in version["earlier"]
    ]
    checks = [
        _check(f"loss_auc.{key}", f"loss-threshold AUC, forget vs test, of {what}", entry["loss_auc"], *loss_band)
        for key, what, entry in sets
    ]
    if rmia_measured:
        checks += [
            _check(f"rmia_ft_auc.{key}", f"RMIA AUC, forget vs test, of {what}", entry["rmia_ft_auc"], *rmia_band)
            for key, what, entry in sets
        ]
    drop = entries["parent"]["test_acc"] - version["test_acc"]
    checks.append(
        _check(
            "test_acc_drop_vs_parent",
            "test accuracy points lost relative to the parent version",
            drop,
            None,
            t.max_test_acc_drop,
        )
    )
    return checks


def histograms_png(
    *,
    model: nn.Module,
    parent: nn.Module,
    original: nn.Module,
    current: ImageSet,
    retain_sample: ImageSet,
    test: ImageSet,
    earlier: Sequence[tuple[str, ImageSet]] = (),
    title: str | None = None,
) -> bytes:
    """PNG of true-class confidence histograms, forget vs test vs remaining, for the original, the parent
    and this version (one panel each); earlier forgotten sets, when given, appear together as one more set.
    """
    earlier_x = [samples for _, samples in earlier]
    panels = {}
    for role, net in (("original", original), ("parent", parent), ("version", model)):
        sets = {
            "forget": _confidences(net, current),
            "test": _confidences(net, test),
            "remaining": _confidences(net, retain_sample),
        }
        if earlier_x:
            sets["earlier forgotten"] = np.concatenate([_confidences(net, samples) for samples in earlier_x])
        panels[ROLE_TITLES[role]] = sets
    return to_png_bytes(confidence_figure(panels, title=title, bins=CONFIDENCE_BINS))


def _confidences(net: nn.Module, samples: ImageSet) -> np.ndarray:
    return true_class_prob(predict_logits(net, samples.x), samples.y)


# ---- the human page ----

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:70rem;
color:#1d1d1f;padding:0 1rem;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.92rem}
th,td{border:1px solid #d0d0d0;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f4f4f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{font-size:1.5rem;font-weight:700;padding:.8rem 1.2rem;border-radius:.4rem;margin:1rem 0}
.verdict.pass{background:#e3f6e8;color:#0c5d26;border:2px solid #2f9e55}
.verdict.fail{background:#fde7e7;color:#8a1010;border:2px solid #d33}
.ok{color:#0c5d26;font-weight:600}.bad{color:#8a1010;font-weight:600}
.note{background:#fff8e1;border-left:4px solid #e0a800;padding:.6rem 1rem}
img{max-width:100%;border:1px solid #ddd}code{font-size:.88rem}
"""


def _e(value: Any) -> str:
    """Any value as escaped HTML text; numbers get a fixed, readable precision."""
    if value is None:
        return "&mdash;"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return html.escape(f"{value:.2f}" if abs(value) >= 0.01 or value == 0 else f"{value:.3g}")
    if isinstance(value, (dict, list)):
        return html.escape(json.dumps(value, sort_keys=True, ensure_ascii=False))
    return html.escape(str(value), quote=True)


def _cell(value: Any) -> str:
    css = ' class="num"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
    return f"<td{css}>{_e(value)}</td>"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _kv_table(items: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{_e(key)}</th><td>{_kv_table(value) if isinstance(value, dict) and value else _e(value)}</td></tr>"
        for key, value in items.items()
    )
    return f"<table><tbody>{rows}</tbody></table>"


def _rmia_text(entry: dict[str, Any]) -> str | None:
    if "rmia_ft_auc" not in entry:
        return None
    return f"{entry['rmia_ft_auc']:.2f} ± {entry['rmia_ft_auc_std']:.2f}"


def render_html(report: dict[str, Any], png: bytes) -> str:
    """The report as one self-contained HTML page (inline CSS, the histogram PNG as a data URI)."""
    roles = [role for role in MODEL_ROLES if role in report["models"]]
    models = report["models"]
    verdict = report["verdict"]
    css_class = "pass" if verdict == "pass" else "fail"
    context = report["context"]
    title_bits = [
        f"{label} {context[key]}" for key, label in (("model_id", "model"), ("version", "version")) if key in context
    ]
    title = "Unlearning audit report" + (f" — {', '.join(title_bits)}" if title_bits else "")

    checks_rows = "".join(
        "<tr>"
        + "".join(_cell(v) for v in (c["name"], c["description"], c["value"], c["limit"]))
        + ('<td class="ok">pass</td>' if c["passed"] else '<td class="bad">FAIL</td>')
        + "</tr>"
        for c in report["checks"]
    )
    checks_html = (
        "<table><thead><tr><th>check</th><th>what</th><th>value</th><th>limit</th><th>result</th></tr></thead>"
        f"<tbody>{checks_rows}</tbody></table>"
    )

    current_rows = [
        [
            ROLE_TITLES[role],
            models[role]["current"]["forget_acc"],
            models[role]["retain_acc"],
            models[role]["test_acc"],
            models[role]["current"]["mis"],
            models[role]["current"]["loss_auc"],
            _rmia_text(models[role]["current"]),
        ]
        for role in roles
    ]
    current_html = _table(
        ["model", "forget acc %", "remaining acc %", "test acc %", "MIS %", "loss AUC %", "RMIA AUC %"],
        current_rows,
    )

    earlier_rows = [
        [
            entry["label"],
            ROLE_TITLES[role],
            entry["n"],
            entry["forget_acc"],
            entry["mis"],
            entry["loss_auc"],
            _rmia_text(entry),
        ]
        for i in range(len(report["data"]["earlier"]))
        for role in roles
        for entry in [models[role]["earlier"][i]]
    ]
    earlier_html = (
        _table(["set", "model", "samples", "forget acc %", "MIS %", "loss AUC %", "RMIA AUC %"], earlier_rows)
        if earlier_rows
        else "<p>No samples were forgotten before this version.</p>"
    )

    rmia = report["rmia"]
    if rmia["measured"]:
        rmia_html = (
            f"<p>RMIA ({_e(rmia['mode'])}, gamma {_e(rmia['gamma'])}) with <strong>{_e(rmia['reference_models'])}"
            f"</strong> reference model(s); AUC is the mean ± std over subsample seeds {_e(rmia['seeds'])}. "
            "The paper's setting used 128 reference models: fewer make a weaker attack.</p>"
        )
    else:
        rmia_html = "<p>RMIA was <strong>not measured</strong> (no reference models); only the loss-threshold "
        rmia_html += "attack and MIS give membership evidence here.</p>"

    gap = report["gap_to_retrained"]
    gap_html = (
        _table(["measure", "average gap (points)"], [[key, value] for key, value in gap.items()])
        if gap
        else "<p>No retrained reference model was trained for this version.</p>"
    )

    conf_rows = [
        [ROLE_TITLES[role], name, s["n"], s["mean"], s["std"], s["p05"], s["median"], s["p95"]]
        for role in roles
        for name, s in models[role]["confidence"].items()
    ]
    conf_html = _table(["model", "set", "n", "mean", "std", "p05", "median", "p95"], conf_rows)

    data = report["data"]
    data_rows = [["current forgotten set", data["current"]["n"]]]
    data_rows += [[f"earlier forgotten set {e['label']}", e["n"]] for e in data["earlier"]]
    data_rows += [["remaining-data sample", data["retain_sample"]["n"]], ["test set", data["test"]["n"]]]

    png_uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    failed = report["failed_checks"]
    verdict_detail = "every check passed" if not failed else "failed: " + ", ".join(failed)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{_e(title)}</h1>
<p>Report schema <code>{_e(report["schema"])}</code>. All accuracies, scores and AUCs in percent; an AUC of 50
means the attack cannot tell forgotten samples from samples the model never saw.</p>
<div class="verdict {css_class}" id="verdict">Verdict: {_e(verdict.upper())} <small>({_e(verdict_detail)})</small></div>
<p class="note">{_e(DISCLAIMER)}</p>

<h2 id="checks">Checks against the stated thresholds</h2>
{checks_html}
{_kv_table(report["thresholds"])}

<h2 id="current">The samples forgotten by this version</h2>
{current_html}

<h2 id="earlier">Samples forgotten earlier</h2>
<p>Successive unlearning must not let earlier forgotten samples come back.</p>
{earlier_html}

<h2 id="rmia">Membership-inference attack</h2>
{rmia_html}

<h2 id="retrained">Gap to a retrained reference</h2>
{gap_html}

<h2 id="histograms">Confidence histograms</h2>
<img alt="true-class confidence histograms, forget vs test vs remaining" src="{png_uri}">
{conf_html}

<h2 id="data">Data</h2>
{_table(["set", "samples"], data_rows)}
<p>MIS member-sampling seed: {_e(data["mis_seed"])}</p>

<h2 id="context">Process and provenance</h2>
{_kv_table(context)}
</body></html>
"""
