"""Benchmark output: per-seed runs folded into mean and spread, written as JSON, Markdown and pictures."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from unlearning.audit.plots import confidence_histograms, to_png_bytes

METRICS = ("forget_acc", "retain_acc", "test_acc", "mis", "rmia_ft_auc", "avg_gap_mis", "avg_gap_rmia",
           "forget_conf", "test_conf")
GROUP = ("method", "retain_access", "subsampled", "stopping")


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None and np.isfinite(v)]
    if not vals:
        return None, None
    return float(np.mean(vals)), float(np.std(vals))


def fold(runs: list[dict[str, Any]], extra_keys: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """One row per (method, setting): the mean of every metric over seeds, with its std under `std`."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for run in runs:
        groups[tuple(run[k] for k in GROUP + extra_keys)].append(run)
    rows = []
    for key, members in groups.items():
        row: dict[str, Any] = dict(zip(GROUP + extra_keys, key))
        row["forget_fraction"] = members[0]["forget_fraction"]
        row["seeds"] = len(members)
        row["diverged_seeds"] = sum(bool(r.get("diverged")) for r in members)
        row["std"] = {}
        for m in METRICS + ("attack_passes", "attack_pgd50_passes", "speedup_vs_retrain", "epochs_run"):
            if any(m in r for r in members):
                row[m], spread = _mean_std([r.get(m) for r in members])
                if m in METRICS:
                    row["std"][m] = spread
        phases = sorted({p for r in members for p in r.get("seconds", {})})
        row["seconds"] = {p: _mean_std([r["seconds"].get(p) for r in members])[0] for p in phases}
        if "lr" in members[0]:
            row["lr"] = members[0]["lr"]
        rows.append(row)
    return rows


def fold_successive(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (setting, request): the current request's set and every earlier set, mean and std over seeds."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for run in runs:
        groups[tuple(run[k] for k in GROUP) + (run["request"],)].append(run)
    out = []
    for key, members in groups.items():
        entry: dict[str, Any] = dict(zip(GROUP + ("request",), key))
        entry["forget_fraction"] = members[0]["forget_fraction"]
        entry["seeds"] = len(members)
        entry["current"] = _fold_metrics([m["current"] for m in members])
        n_earlier = len(members[0]["earlier"])
        entry["earlier"] = [_fold_metrics([m["earlier"][j] for m in members]) for j in range(n_earlier)]
        entry["seconds"] = {p: _mean_std([m["seconds"].get(p) for m in members])[0]
                            for p in sorted({p for m in members for p in m["seconds"]})}
        for m in ("attack_passes", "attack_pgd50_passes", "speedup_vs_retrain", "retrain_seconds"):
            if any(m in r for r in members):
                entry[m] = _mean_std([r.get(m) for r in members])[0]
        out.append(entry)
    return sorted(out, key=lambda e: (e["request"], e["method"] != "retrain", not e["retain_access"], e["subsampled"]))


def _fold_metrics(items: list[dict[str, Any]]) -> dict[str, Any]:
    folded: dict[str, Any] = {"request": items[0]["request"], "std": {}}
    for m in METRICS:
        if any(m in i for i in items):
            folded[m], folded["std"][m] = _mean_std([i.get(m) for i in items])
    return folded


def _fmt(value: float | None, spread: float | None = None, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if spread is None else f"{value:.{digits}f} ± {spread:.{digits}f}"


def setting_name(row: dict[str, Any]) -> str:
    if row["method"] in ("original", "retrain"):
        return "-"
    name = "subsampled D_R" if row["subsampled"] else ("with D_R" if row["retain_access"] else "without D_R")
    return name + (" + stop" if row.get("stopping") else "")


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# Benchmark `{result['profile']}`",
        "",
        f"- command: `{result['command']}`",
        f"- machine: {result['machine']}",
        f"- profile: {result['profile_notes']}",
        f"- seeds: {result['seeds']} (each a different forget set and run); values are mean ± std over seeds",
        f"- eps_init (calibrated on the tuning subset, 95% rule): {result['tuning']['eps_init']:.4g}",
        f"- wall time of the whole run: {result['total_seconds'] / 60:.1f} min",
        "",
        "## 10% random forgetting",
        "",
        "Accuracies, MIS and RMIA forget-vs-test AUC in percent. Gaps: mean |difference| to the retrained"
        " model over (D_F, D_R, D_T accuracy, MIS or RMIA AUC). Seconds are unlearning wall time (attack +"
        " fine-tune), speed-up = retrain seconds / those seconds.",
        "",
        "| method | setting | lr | D_F acc | D_R acc | D_T acc | MIS | RMIA AUC | gap (MIS) | gap (RMIA) "
        "| seconds | attack passes (PGD-50 units) | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        sd = r["std"]
        spent = sum(v for k, v in r["seconds"].items() if k != "audit" and v is not None)
        cell = lambda m: _fmt(r.get(m), sd.get(m))  # noqa: E731
        lines.append(
            f"| {r['method']} | {setting_name(r)} | {r.get('lr', '-')} | {cell('forget_acc')} "
            f"| {cell('retain_acc')} | {cell('test_acc')} | {cell('mis')} | {cell('rmia_ft_auc')} "
            f"| {cell('avg_gap_mis')} | {cell('avg_gap_rmia')} "
            f"| {spent:.1f} | {_fmt(r.get('attack_pgd50_passes'))} | {_fmt(r.get('speedup_vs_retrain'), digits=1)} |"
        )
    lines += [
        "",
        f"## Successive requests ({result['successive_requests']} x {100 * result['successive_fraction']:g}%"
        " of the data, AMUN-A)",
        "",
        "Gaps are to a model retrained without all requests, so they are given after the last request only.",
        "",
        "| request | method | setting | set audited | D_F acc | D_T acc | MIS | RMIA AUC | gap (MIS) | gap (RMIA) "
        "| seconds | attack passes (PGD-50 units) | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in result["successive"]:
        spent = sum(v for v in e["seconds"].values() if v is not None)
        for audited in [e["current"]] + e["earlier"]:
            which = "current" if audited is e["current"] else f"request {audited['request'] + 1}"
            sd = audited["std"]
            lines.append(
                f"| {e['request'] + 1} | {e['method']} | {setting_name(e)} | {which} "
                f"| {_fmt(audited['forget_acc'], sd['forget_acc'])} | {_fmt(audited['test_acc'], sd['test_acc'])} "
                f"| {_fmt(audited['mis'], sd['mis'])} | {_fmt(audited.get('rmia_ft_auc'), sd.get('rmia_ft_auc'))} "
                f"| {_fmt(audited.get('avg_gap_mis'), sd.get('avg_gap_mis'))} "
                f"| {_fmt(audited.get('avg_gap_rmia'), sd.get('avg_gap_rmia'))} "
                f"| {spent:.1f} | {_fmt(e.get('attack_pgd50_passes'))} "
                f"| {_fmt(e.get('speedup_vs_retrain'), digits=1)} |"
            )
    if result.get("failures"):
        lines += ["", "## Runs that did not finish", ""] + [f"- {f}" for f in result["failures"]]
    lines += ["", "## Tuned learning rates (tuning subset, smallest MIS-based gap)", "",
              "| setting | grid | gap per lr | chosen |", "|---|---|---|---|"]
    for key, c in result["tuning"]["lr"].items():
        scores = ["diverged" if g is None or not np.isfinite(g) else round(g, 2) for g in c["avg_gap_mis"]]
        lines.append(f"| {key} | {c['grid']} | {scores} | {c['lr']} |")
    lines += ["", f"![confidence histograms]({result['profile']}-confidence.png)",
              f"![average gap per method]({result['profile']}-gaps.png)", ""]
    return "\n".join(lines)


def gap_figure(rows: list[dict[str, Any]]):
    """Average gap to retrain per method, with and without D_R, error bars = std over seeds."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4))
    for i, access in enumerate((True, False)):
        ax = fig.add_subplot(1, 2, i + 1)
        sel = [r for r in rows if r["method"] not in ("retrain",) and
               (r["retain_access"] == access or r["method"] == "original")]
        names = [f"{r['method']}{' (sub)' if r['subsampled'] else ''}{' +stop' if r.get('stopping') else ''}"
                 for r in sel]
        pos = np.arange(len(sel))
        for off, key, label in ((-0.2, "avg_gap_mis", "MIS-based"), (0.2, "avg_gap_rmia", "RMIA-based")):
            vals = [r.get(key) or 0.0 for r in sel]
            errs = [r["std"].get(key) or 0.0 for r in sel]
            ax.bar(pos + off, vals, 0.4, yerr=errs, capsize=2, label=label)
        ax.set_xticks(pos, names, rotation=45, ha="right", fontsize=8)
        ax.set_title("with D_R" if access else "without D_R")
        ax.set_ylabel("average gap to retrain (points)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _finite(obj: Any) -> Any:
    """JSON has no NaN or infinity: a value that is not finite (a diverged run's score) becomes null."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.generic):
        return _finite(obj.item())
    return obj


def to_json(result: dict[str, Any]) -> str:
    return json.dumps(_finite(result), indent=1, allow_nan=False) + "\n"


def write(result: dict[str, Any], panels: dict[str, Any], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    name = result["profile"]
    json_path = out_dir / f"{name}.json"
    json_path.write_text(to_json(result))
    md_path = out_dir / f"{name}.md"
    md_path.write_text(markdown(result))
    hist = confidence_histograms(
        {model: {"remaining": c.retain, "forget": c.forget, "test": c.test} for model, c in panels.items()},
        out_dir / f"{name}-confidence.png",
        title=f"True-class confidence, profile {name} (seed {result['seeds'][0]})",
    )
    gaps_path = out_dir / f"{name}-gaps.png"
    gaps_path.write_bytes(to_png_bytes(gap_figure(result["rows"])))
    return [json_path, md_path, Path(hist), gaps_path]
