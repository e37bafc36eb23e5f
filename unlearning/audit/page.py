"""The audit report as one self-contained HTML page for a governance reviewer: the plain-language headline and
verdict first, then the per-sample evidence, the cumulative history, and every number behind them.

Inline CSS and the figures as data URIs: the page needs nothing else, and the service serves it with a
locked-down Content-Security-Policy.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from typing import Any

from unlearning.audit import stats
from unlearning.audit.report import DISCLAIMER, MODEL_ROLES

PER_SAMPLE_ROWS = 500  # rows of the per-sample table on the page; the JSON and CSV downloads hold all
ROLE_TITLES = {
    "version": "this version",
    "parent": "parent version",
    "original": "original (version 1)",
    "retrained": "retrained reference",
}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:72rem;
color:#1d1d1f;padding:0 1rem;line-height:1.45}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #d0d0d0;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f4f4f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
.headline{font-size:1.15rem;background:#f4f7fb;border-left:5px solid #3b6db3;padding:.8rem 1.1rem;margin:1rem 0}
.verdict{font-size:1.5rem;font-weight:700;padding:.7rem 1.2rem;border-radius:.4rem;margin:1rem 0}
.verdict.pass{background:#e3f6e8;color:#0c5d26;border:2px solid #2f9e55}
.verdict.fail{background:#fde7e7;color:#8a1010;border:2px solid #d33}
.verdict.inconclusive{background:#f1f1f4;color:#3a3a46;border:2px solid #8a8a99}
.pass{color:#0c5d26;font-weight:600}.fail{color:#8a1010;font-weight:600}.inconclusive{color:#55556a;font-weight:600}
.note{background:#fff8e1;border-left:4px solid #e0a800;padding:.6rem 1rem}
img{max-width:100%;border:1px solid #ddd}code{font-size:.86rem}
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


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], table_id: str | None = None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _kv_table(items: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{_e(key)}</th><td>{_kv_table(value) if isinstance(value, dict) and value else _e(value)}</td></tr>"
        for key, value in items.items()
    )
    return f"<table><tbody>{rows}</tbody></table>"


def _interval(value: float | None, ci: Sequence[float] | None) -> str | None:
    if value is None:
        return None
    return f"{value:.1f}" if ci is None else f"{value:.1f} [{ci[0]:.1f}, {ci[1]:.1f}]"


def _iv(interval: dict[str, Any] | None) -> str | None:
    return None if interval is None else _interval(interval["value"], [interval["ci_low"], interval["ci_high"]])


def _result(result: str) -> str:
    return f'<td class="{_e(result)}">{_e(result)}</td>'


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _per_sample(report: dict[str, Any]) -> str:
    rows = [r for r in report["per_sample"] if r["set"] == "current"]
    rows.sort(key=lambda r: (r["p_value"], r["id"]))  # the most member-like first: what a reviewer checks
    shown = rows[:PER_SAMPLE_ROWS]
    table = _table(
        ["sample ID", "membership score", "p-value vs never-seen data", "looks never seen"],
        [[r["id"], r["score"], r["p_value"], r["indistinguishable"]] for r in shown],
        table_id="per-sample-table",
    )
    more = (f"<p>The {len(shown)} lowest p-values of {len(rows)} are shown.</p>" if len(rows) > len(shown) else "")
    earlier = len(report["per_sample"]) - len(rows)
    tail = (f"<p>The downloads also list the {earlier} samples forgotten by earlier versions, scored by this "
            "version.</p>" if earlier else "")  # fmt: skip
    return table + more + tail


def render_html(report: dict[str, Any], evidence_png: bytes, history_png: bytes | None = None) -> str:
    """The report as one self-contained HTML page."""
    roles = [role for role in MODEL_ROLES if role in report["models"]]
    models = report["models"]
    verdict = report["verdict"]
    context = report["context"]
    found = report["evidence"]
    title_bits = [
        f"{label} {context[key]}" for key, label in (("model_id", "model"), ("version", "version")) if key in context
    ]
    title = "Unlearning audit report" + (f" — {', '.join(title_bits)}" if title_bits else "")
    reasons = "".join(f"<li>{_e(reason)}</li>" for reason in report["reasons"])
    reasons_html = f"<ul id=\"reasons\">{reasons}</ul>" if reasons else "<p>Every check is within its limit.</p>"

    checks_html = (
        "<table><thead><tr><th>check</th><th>what</th><th>value [95% CI]</th><th>limit</th><th>result</th>"
        "<th>samples</th><th>samples needed to decide</th></tr></thead><tbody>"
        + "".join(
            "<tr>" + _cell(c["name"]) + _cell(c["description"])
            + _cell(_interval(c["value"], [c["ci_low"], c["ci_high"]])) + _cell(c["limit"]) + _result(c["result"])
            + _cell(c["samples"]) + _cell(c["samples_needed"]) + "</tr>"
            for c in report["checks"]
        )
        + "</tbody></table>"
    )  # fmt: skip

    def set_row(label: str, role: str, entry: dict[str, Any]) -> list[Any]:
        e = entry["evidence"]
        return [label, ROLE_TITLES[role], entry["n"], _iv(e["indistinguishable_pct"]), _iv(e["auc"]),
                _interval(entry["forget_acc"], entry["ci"]["forget_acc"]), _interval(entry["mis"], entry["ci"]["mis"]),
                _interval(entry["loss_auc"], entry["ci"]["loss_auc"])]  # fmt: skip

    set_header = ["set", "model", "samples", "% look never seen", "forget-vs-test AUC", "forget acc %", "MIS %",
                  "loss AUC %"]  # fmt: skip
    current_rows = [set_row("this version's", role, models[role]["current"]) for role in roles]
    union_rows = [set_row("all forgotten so far", role, models[role]["union"]) for role in roles
                  if models[role]["union"] is not None]  # fmt: skip
    model_rows = [
        [ROLE_TITLES[role], _interval(models[role]["retain_acc"], models[role]["ci"]["retain_acc"]),
         _interval(models[role]["test_acc"], models[role]["ci"]["test_acc"]),
         _iv(models[role]["retained"]["auc"]), _iv(models[role]["retained"]["indistinguishable_pct"])]
        for role in roles
    ]  # fmt: skip
    earlier_rows = [
        set_row(entry["label"], role, entry)
        for i in range(len(report["data"]["earlier"]))
        for role in roles
        for entry in [models[role]["earlier"][i]]
    ]
    earlier_html = (
        _table(set_header, earlier_rows) if earlier_rows else "<p>No samples were forgotten before this version.</p>"
    )

    history_rows = [
        [f"v{h['version']}", h["samples"], _iv(h["indistinguishable_pct"]), _iv(h["auc"]), h["verdict"]]
        for h in report["history"]
    ]
    history_html = (_img(history_png, "cumulative evidence per version") if history_png else "") + _table(
        ["version", "samples forgotten so far", "% look never seen", "forget-vs-test AUC", "verdict"], history_rows
    )

    rmia = report["rmia"]
    if rmia["measured"]:
        rmia_html = (
            f"<p>RMIA ({_e(rmia['mode'])}, gamma {_e(rmia['gamma'])}) with <strong>{_e(rmia['reference_models'])}"
            "</strong> reference model(s) gives the membership score. The paper's setting used 128 reference "
            "models: fewer make a weaker attack.</p>"
        )
    else:
        # why not, in the caller's words when it gave them (a service: its reference models were destroyed
        # because they held forgotten samples, and new ones are being trained)
        why = (context.get("reference_set") or {}).get("reason") or "no reference models were trained for this model"
        rmia_html = (f"<p>RMIA was <strong>not measured</strong> ({_e(why)}): the membership score is the loss "
                     "attack's, calibrated against never-seen test data.</p>")  # fmt: skip

    gap = report["gap_to_retrained"]
    gap_html = (
        _table(["measure", "average gap (points)"], [[key, value] for key, value in gap.items()])
        if gap
        else "<p>No retrained reference model was trained for this version.</p>"
    )
    utility = report["utility"]
    if utility["test_acc_drop_vs_original"] is None:
        versus_original = "no comparison with the original, which no longer exists"
    else:
        versus_original = f"{_iv(utility['test_acc_drop_vs_original'])} against the original"
    data = report["data"]
    data_rows = [["forgotten by this version", data["current"]["n"]]]
    data_rows += [[f"forgotten by {e['label']}", e["n"]] for e in data["earlier"]]
    data_rows += [["all forgotten so far", data["union"]["n"]], ["remaining-data sample", data["retain_sample"]["n"]],
                  ["never-seen test samples (the p-values' reference)", data["test"]["n"]]]  # fmt: skip
    methods = (f"Intervals are 95% two-sided: {stats.EXACT} for shares and accuracies, {stats.BOOTSTRAP_OR_HOEFFDING} for "
               f"AUCs, {stats.PAIRED_BOOTSTRAP} for differences between models on the same samples. A check "
               "passes when its whole interval is within the limit, fails when the whole interval is outside, and "
               "is inconclusive when the interval straddles the limit.")  # fmt: skip
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{_e(title)}</h1>
<p class="headline" id="headline">{_e(report["headline"])}</p>
<div class="verdict {_e(verdict)}" id="verdict">Verdict: {_e(verdict.upper())}</div>
{reasons_html}
<p class="note">{_e(DISCLAIMER)}</p>

<h2 id="evidence">Does each forgotten sample look like data the model never saw?</h2>
<p>Every forgotten sample gets a membership score ({_e(found["score_description"])}) and a p-value: the share of
never-seen test samples that score at least as high. A p-value of at least {_e(found["alpha"])} means the sample is
indistinguishable from never-seen data at that level; never-seen data itself gives about
{100 * (1 - found["alpha"]):.0f}% such samples.</p>
{_img(evidence_png, "cumulative distribution of membership scores, forgotten vs never-seen vs remaining")}

<h2 id="per-sample">The samples this version forgot, one by one</h2>
<p>All samples, as JSON or CSV: <code>GET …/versions/{_e(context.get("version"))}/audit/samples</code> and
<code>…/audit/samples.csv</code>.</p>
{_per_sample(report)}

<h2 id="history">Cumulative evidence, version by version</h2>
<p>Each version also tests every sample forgotten so far: small requests cannot decide alone, their union can.</p>
{history_html}

<h2 id="checks">Checks against the stated thresholds</h2>
<p>{_e(methods)}</p>
{checks_html}
{_kv_table(report["thresholds"])}

<h2 id="current">Forgotten samples, per model</h2>
{_table(set_header, current_rows + union_rows)}

<h2 id="models">Utility and the remaining data</h2>
<p>Test accuracy lost: {_e(_iv(utility["test_acc_drop_vs_parent"]))} points against the parent,
{_e(versus_original)}. The remaining data's membership AUC changed by
{_e(_iv(report["retained_exposure"]["change_vs_parent"]))} points against the parent (a rise would mean the samples
that stay became more exposed).</p>
{_table(["model", "remaining acc %", "test acc %", "remaining-vs-test AUC", "% remaining that look never seen"], model_rows)}

<h2 id="earlier">Samples forgotten earlier</h2>
<p>Successive unlearning must not let earlier forgotten samples come back.</p>
{earlier_html}

<h2 id="rmia">Membership-inference attack</h2>
{rmia_html}

<h2 id="retrained">Gap to a retrained reference</h2>
{gap_html}

<h2 id="data">Data</h2>
{_table(["set", "samples"], data_rows)}

<h2 id="context">Process and provenance</h2>
{_kv_table(context)}
</body></html>
"""
