"""Benchmark output: per-seed runs folded into mean and spread, written as JSON, Markdown and pictures."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from unlearning.audit import stats
from unlearning.audit.plots import confidence_histograms, to_png_bytes

METRICS = ("forget_acc", "retain_acc", "test_acc", "mis", "rmia_ft_auc", "avg_gap_mis", "avg_gap_rmia",
           "forget_conf", "test_conf")
GROUP = ("method", "retain_access", "subsampled", "stopping")


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof 1; None from a single value) of the finite values."""
    vals = [v for v in values if v is not None and np.isfinite(v)]
    if not vals:
        return None, None
    return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else None


def paired(runs: list[dict[str, Any]], amun_methods: tuple[str, ...] = ("amun", "amun_salun"),
           metrics: tuple[str, ...] = ("avg_gap_mis", "avg_gap_rmia")) -> list[dict[str, Any]]:
    """Each baseline against each AMUN variant in the same setting: the per-seed difference of their gaps
    (baseline minus AMUN; positive = AMUN closer to the retrained model), its mean and 95% t-interval.

    Only seeds where both ran (neither diverged) pair up; "better" is claimed only where the interval
    excludes 0."""
    by_key: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for r in runs:
        if r["method"] in ("original", "retrain") or r.get("stopping") or r.get("diverged"):
            continue
        by_key[(r["method"], r["retain_access"], r["subsampled"])][r["seed"]] = r
    out = []
    for (method, access, subsampled), base_runs in sorted(by_key.items()):
        if method in amun_methods or subsampled:
            continue
        setting = "with-DR" if access else "no-DR"
        for amun in amun_methods:
            amun_runs = by_key.get((amun, access, False), {})
            for metric in metrics:
                seeds = sorted(s for s in base_runs if s in amun_runs and base_runs[s].get(metric) is not None
                               and amun_runs[s].get(metric) is not None)
                entry: dict[str, Any] = {"baseline": method, "setting": setting, "against": amun, "metric": metric,
                                         "seeds": seeds}
                if len(seeds) < 2:
                    out.append({**entry, "mean_diff": None, "ci_low": None, "ci_high": None, "verdict": "too few seeds"})
                    continue
                diff = stats.paired_mean_difference([base_runs[s][metric] for s in seeds],
                                                    [amun_runs[s][metric] for s in seeds])
                verdict = ("amun better" if diff.low > 0 else "baseline better" if diff.high < 0 else "no difference")
                out.append({**entry, "mean_diff": diff.value, "ci_low": diff.low, "ci_high": diff.high,
                            "method": diff.method, "verdict": verdict})
    return out


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
        for k in ("lr", "step_size", "salun_ratio", "forget_in_mix", "guarded"):
            if k in members[0]:
                row[k] = members[0][k]
        rows.append(row)
    return rows


def fold_stream(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (mode, method): the union's metrics after the stream, test accuracy and cost, mean and std over seeds."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for run in runs:
        groups[(run["mode"], run["method"])].append(run)
    out = []
    for (mode, method), members in groups.items():
        done = [m for m in members if not m.get("diverged")]
        entry: dict[str, Any] = {"mode": mode, "method": method, "requests": members[0]["requests"],
                                 "request_fraction": members[0]["request_fraction"],
                                 "request_size": members[0]["request_size"], "seeds": len(members),
                                 "diverged_seeds": len(members) - len(done), "lr": members[0].get("lr"),
                                 "step_size": members[0].get("step_size"),
                                 "forget_in_mix": members[0].get("forget_in_mix")}
        union: dict[str, Any] = {"std": {}}
        for m in METRICS:
            if any(m in r.get("union", {}) for r in done):
                union[m], union["std"][m] = _mean_std([r["union"].get(m) for r in done])
        entry["union"] = union
        entry["test_acc_after"], entry["test_acc_after_std"] = _mean_std([r.get("test_acc_after") for r in done])
        entry["test_acc_before"], _ = _mean_std([r.get("test_acc_before") for r in members])
        per_request = [float(np.mean(r["per_request_seconds"])) for r in done]
        entry["per_request_seconds"], _ = _mean_std(per_request)
        entry["speedup_vs_retrain"], _ = _mean_std([r.get("speedup_vs_retrain") for r in done])
        entry["guard_tripped"] = any(r.get("guard_tripped") for r in done)
        entry["guard_tripped_seeds"] = sum(bool(r.get("guard_tripped")) for r in done)
        out.append(entry)
    order = {"full": 0, "subsampled": 1, "no_retain": 2}
    return sorted(out, key=lambda e: (e["method"] != "retrain", e["method"] != "amun", e["method"],
                                      order.get(e["mode"], 9)))


def fold_requests(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (mode, method, request): test accuracy after it and its seconds, mean over seeds (how a stream
    wears the model down, request by request)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for run in runs:
        for r in run.get("per_request", []):
            groups[(run["mode"], run["method"], r["request"])].append(r)
    out = []
    for (mode, method, request), members in sorted(groups.items()):
        acc, acc_sd = _mean_std([m.get("test_acc") for m in members])
        out.append({"mode": mode, "method": method, "request": request, "seeds": len(members),
                    "test_acc": acc, "test_acc_std": acc_sd, "seconds": _mean_std([m["seconds"] for m in members])[0],
                    "guard_tripped": sum(bool(m["guard_tripped"]) for m in members)})
    return out


def retrain_vs_retrain(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """How far two exact retrains lie apart (gap of the second to the first), mean and std over seeds."""
    out: dict[str, Any] = {"seeds": len(pairs), "std": {}}
    for key in ("avg_gap_mis", "avg_gap_rmia"):
        out[key], out["std"][key] = _mean_std([p.get(key) for p in pairs])
    return out


def _fmt(value: float | None, spread: float | None = None, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if spread is None else f"{value:.{digits}f} ± {spread:.{digits}f}"


def setting_name(row: dict[str, Any]) -> str:
    if row["method"] in ("original", "retrain"):
        return "-"
    name = "subsampled D_R" if row["subsampled"] else ("with D_R" if row["retain_access"] else "without D_R")
    if row.get("forget_in_mix") is False:  # AMUN fine-tuned without D_F: D_R u D_A (D_A alone without D_R)
        name += ", no D_F in mix"
    if row.get("guarded") and not row.get("stopping"):  # the utility guard alone (the "+ stop" rows have it too)
        name += " + guard"
    return name + (" + stop" if row.get("stopping") else "")


def merge(profile, out_dir: Path) -> dict[str, Any]:
    """The profile's result from every section file in `out_dir` (<profile>.<section>.json, and the loop
    benchmark's <profile>.loop.json when present)."""
    parts = {name: json.loads(path.read_text()) for name in ("tune", "table", "stream")
             if (path := out_dir / f"{profile.name}.{name}.json").exists()}
    if not parts:
        raise FileNotFoundError(f"no section results for profile {profile.name!r} in {out_dir}")
    tune, table, stream = parts.get("tune", {}), parts.get("table", {}), parts.get("stream", {})
    first = next(iter(parts.values()))
    runs = table.get("runs", [])
    result: dict[str, Any] = {
        "profile": profile.name,
        "profile_notes": profile.notes,
        "machine": first["machine"],
        "command": "; ".join(dict.fromkeys(part["command"] for part in parts.values())),
        "sections": {name: {"machine": part["machine"], "command": part["command"],
                            "seconds": part["seconds"]} for name, part in parts.items()},
        "seeds": list(profile.seeds),
        "original_train_acc": first.get("original_train_acc"),
        "rows": fold(runs),
        "retrain_vs_retrain": retrain_vs_retrain(table.get("retrain_vs_retrain_runs", [])),
        "paired": paired(runs),
        "attack": tune.get("attack"),
        "tuning": tune.get("tuning"),
        "stream": fold_stream(stream.get("stream_runs", [])),
        "successive": fold_requests(stream.get("stream_runs", [])),
        "stream_tuning": stream.get("stream_tuning"),
        "stream_seeds": list(profile.stream_seeds),
        "total_seconds": sum(part["seconds"] for part in parts.values()),
        "failures": [f for part in parts.values() for f in part.get("failures", [])],
        "runs": runs,
        "stream_runs": stream.get("stream_runs", []),
    }
    loop_file = out_dir / f"{profile.name}.loop.json"
    if loop_file.exists():
        loop = json.loads(loop_file.read_text())
        result["loop"] = {k: loop[k] for k in ("device", "fit_samples_per_s", "bare_samples_per_s", "ratio")}
        result["loop_detail"] = loop
    return result


def save_panels(panels: dict[str, Any], path: Path) -> None:
    """The confidence histograms' data, so a later section's merge can draw them again."""
    arrays = {f"{model}/{part}": getattr(c, part) for model, c in panels.items() for part in ("forget", "retain", "test")}
    np.savez_compressed(path, **arrays)


def load_panels(path: Path) -> dict[str, dict[str, np.ndarray]]:
    if not path.exists():
        return {}
    with np.load(path) as data:
        out: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
        for key in data.files:
            model, part = key.split("/")
            out[model]["remaining" if part == "retain" else part] = data[key]
    return dict(out)


def _claim(entry: dict[str, Any]) -> str:
    if entry["mean_diff"] is None:
        return "too few seeds"
    return {"amun better": "**AMUN better**", "baseline better": "**baseline better**"}.get(entry["verdict"],
                                                                                          "no difference")


def markdown(result: dict[str, Any]) -> str:
    rvr = result["retrain_vs_retrain"]
    attack, tuning = result.get("attack") or {}, result.get("tuning") or {}
    lines = [
        f"# Benchmark `{result['profile']}`",
        "",
        f"- command(s): `{result['command']}`",
        f"- machine: {result['machine']}",
        f"- profile: {result['profile_notes']}",
        f"- original model: {_fmt(result.get('original_train_acc'))}% training accuracy (eval mode)",
        f"- seeds: {result['seeds']} (each a different forget set and run); values are mean ± std over seeds"
        " (ddof 1)",
        f"- wall time: {result['total_seconds'] / 60:.1f} min"
        + "".join(f"; {name} {part['seconds'] / 60:.1f} min" for name, part in result["sections"].items()),
    ]
    if attack:
        lines.append(f"- starting radius: rule `{attack['eps_rule']}` (eps_init {attack['eps_init']:.4g}), "
                     f"misclassified forget samples {'in' if attack['include_misclassified'] else 'out of'} D_A,"
                     " chosen by the radius study below")
    if result.get("loop"):
        lo = result["loop"]
        lines.append(f"- training loop ({lo['device']}): fit() {lo['fit_samples_per_s']:.0f} samples/s, a bare "
                     f"PyTorch loop {lo['bare_samples_per_s']:.0f}: ratio {lo['ratio']:.3f}")
    if result["rows"]:
        lines += [
            "",
            "## 10% random forgetting",
            "",
            "Accuracies, MIS and RMIA forget-vs-test AUC in percent. Gaps: mean |difference| to the retrained"
            " model over (D_F, D_R, D_T accuracy, MIS or RMIA AUC). Seconds are unlearning wall time (attack +"
            " fine-tune), speed-up = retrain seconds / those seconds. \"+ guard\": the run had the service's utility"
            " guard (validation accuracy within 1 point of the original's, the best passing point returned), as every"
            " method without D_R has, tuned with it too.",
            "",
            f"Two exact retrains (another initialisation and order) differ by a gap of "
            f"{_fmt(rvr.get('avg_gap_mis'), rvr['std'].get('avg_gap_mis'))} (MIS) and "
            f"{_fmt(rvr.get('avg_gap_rmia'), rvr['std'].get('avg_gap_rmia'))} (RMIA): the noise floor of every gap.",
            "",
            "| method | setting | lr | step | D_F acc | D_R acc | D_T acc | MIS | RMIA AUC | gap (MIS) | gap (RMIA) "
            "| seconds | attack passes (PGD-50 units) | speed-up |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in result["rows"]:
            sd = r["std"]
            spent = sum(v for k, v in r["seconds"].items() if k != "audit" and v is not None)
            cell = lambda m: _fmt(r.get(m), sd.get(m))  # noqa: E731
            lines.append(
                f"| {r['method']} | {setting_name(r)} | {r.get('lr', '-')} | {r.get('step_size', '-')} "
                f"| {cell('forget_acc')} | {cell('retain_acc')} | {cell('test_acc')} | {cell('mis')} "
                f"| {cell('rmia_ft_auc')} | {cell('avg_gap_mis')} | {cell('avg_gap_rmia')} "
                f"| {spent:.1f} | {_fmt(r.get('attack_pgd50_passes'))} | {_fmt(r.get('speedup_vs_retrain'), digits=1)} |"
            )
        lines.append(f"| retrain vs retrain | - | - | - | - | - | - | - | - | {_fmt(rvr.get('avg_gap_mis'))} "
                     f"| {_fmt(rvr.get('avg_gap_rmia'))} | - | - | - |")
        lines += ["", "### Paired differences: baseline gap minus AMUN's, per seed",
                  "", "Mean and 95% Student-t interval (ddof 1) of the per-seed differences; positive means AMUN"
                  " is closer to the retrained model. A method is better only where the interval excludes 0.",
                  "", "| baseline | setting | against | metric | mean diff | 95% CI | seeds | claim |",
                  "|---|---|---|---|---|---|---|---|"]
        for e in result["paired"]:
            ci = "-" if e["ci_low"] is None else f"[{e['ci_low']:.2f}, {e['ci_high']:.2f}]"
            lines.append(f"| {e['baseline']} | {e['setting']} | {e['against']} | {e['metric']} "
                         f"| {_fmt(e['mean_diff'])} | {ci} | {len(e['seeds'])} | {_claim(e)} |")
    if result["stream"]:
        lines += _stream_markdown(result)
    if result.get("failures"):
        lines += ["", "## Runs that did not finish", ""] + [f"- {f}" for f in result["failures"]]
    if attack:
        lines += ["", "## Starting radius of the attack (tuning subset, AMUN, mean of runs)", "",
                  "| rule | misclassified in D_A | D_R | eps_init | share flipped at eps_init | mean ‖x_adv − x‖ "
                  "| gap (MIS) |", "|---|---|---|---|---|---|---|"]
        for st in attack["studies"]:
            lines.append(f"| {st['eps_rule']} | {'yes' if st['include_misclassified'] else 'no'} "
                         f"| {'with' if st['retain_access'] else 'without'} | {st['eps_init']:.4g} "
                         f"| {_fmt(st['first_radius_share'])} | {_fmt(st['delta_norm_mean'], digits=3)} "
                         f"| {_fmt(st['mean_gap_mis'])} |")
    if tuning:
        lines += ["", f"## Tuned schedules (tuning subset of {tuning['forget_size']}, mean of {tuning['runs']} runs, "
                  f"validation accuracy within {tuning['max_acc_drop']} point of the original's "
                  f"{tuning['original_val_acc']:.2f})", "",
                  "| setting | chosen lr | step | SalUn ratio | AMUN mix | constraint met "
                  "| grid: (lr, step) mean gap or why not |",
                  "|---|---|---|---|---|---|---|"]
        lines += [_tuning_line(key, c) for key, c in tuning["schedule"].items()]
    figures = [f"![confidence histograms]({result['profile']}-confidence.png)",
               f"![average gap per method]({result['profile']}-gaps.png)"] if result["rows"] else []
    if result["stream"]:
        figures.append(f"![test accuracy over the stream]({result['profile']}-stream.png)")
    return "\n".join(lines + [""] + figures + [""])


def _tuning_line(key: str, c: dict[str, Any]) -> str:
    grid = "; ".join(f"({g['lr']}, {g['step_size']}) "
                     + (f"{g['mean_gap_mis']:.2f}" if g["feasible"] else (g["reason"] or "").split(":")[0])
                     for g in c["grid"])
    mix = c.get("forget_in_mix")
    mix_cell = "-" if mix is None or "other_mixes" not in c else ("D_F in" if mix else "D_F out")
    for other, oc in c.get("other_mixes", {}).items():  # the mix not chosen, and how close it came
        best = next(g for g in oc["grid"] if g["lr"] == oc["lr"] and g["step_size"] == oc["step_size"])
        gap = "-" if best["mean_gap_mis"] is None else f"{best['mean_gap_mis']:.2f}"
        grid += (f" <br> D_F {'in' if other == 'True' else 'out'}: best ({oc['lr']}, {oc['step_size']}) {gap}"
                 f"{'' if oc['constraint_met'] else ' (constraint not met)'}")
    return (f"| {key} | {c['lr']} | {c['step_size']} | {c.get('salun_ratio', '-') if 'salun' in key else '-'} "
            f"| {mix_cell} | {'yes' if c['constraint_met'] else '**no**'} | {grid} |")


def _stream_markdown(result: dict[str, Any]) -> list[str]:
    first = result["stream"][0]
    lines = [
        "",
        f"## The stream: {first['requests']} successive requests of {100 * first['request_fraction']:g}% "
        f"({first['request_size']} samples) each",
        "",
        f"Seeds {result['stream_seeds']}. Audited after the last request on the union of all requests against a"
        " model retrained without it. Every request runs with the utility guard (validation accuracy within 1 point"
        " of its parent); \"guard\" counts the seeds where it stopped a request at its best passing point.",
        "",
        "| method | mode | lr | step | union D_F acc | D_R acc | D_T acc after | MIS | RMIA AUC | gap (MIS) "
        "| gap (RMIA) | seconds a request | speed-up | guard |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in result["stream"]:
        u, sd = e["union"], e["union"]["std"]
        cell = lambda m: _fmt(u.get(m), sd.get(m))  # noqa: E731
        lines.append(
            f"| {e['method']} | {e['mode']}{', no D_F in mix' if e.get('forget_in_mix') is False else ''} "
            f"| {e.get('lr') or '-'} | {e.get('step_size') or '-'} "
            f"| {cell('forget_acc')} | {cell('retain_acc')} | {cell('test_acc')} | {cell('mis')} | {cell('rmia_ft_auc')} "
            f"| {cell('avg_gap_mis')} | {cell('avg_gap_rmia')} | {_fmt(e['per_request_seconds'], digits=1)} "
            f"| {_fmt(e['speedup_vs_retrain'], digits=1)} | {e['guard_tripped_seeds']}/{e['seeds']} |"
        )
    return lines


def stream_figure(requests: list[dict[str, Any]], stream: list[dict[str, Any]]):
    """Test accuracy after each request of the stream, per mode and method, against the retrained model's."""
    from matplotlib.figure import Figure

    modes = [m for m in ("full", "subsampled", "no_retain") if any(r["mode"] == m for r in requests)]
    fig = Figure(figsize=(4.2 * max(1, len(modes)), 3.6))
    retrain = next((e for e in stream if e["method"] == "retrain"), None)
    axes = fig.subplots(1, len(modes), sharey=True, squeeze=False)[0]
    for ax, mode in zip(axes, modes):
        for method in sorted({r["method"] for r in requests if r["mode"] == mode}, key=lambda m: m != "amun"):
            pts = [r for r in requests if r["mode"] == mode and r["method"] == method]
            ax.plot([r["request"] + 1 for r in pts], [r["test_acc"] for r in pts], marker="o", ms=3,
                    lw=2.5 if method == "amun" else 1.2, label="AMUN-A" if method == "amun" else method)
        if retrain is not None and retrain["test_acc_after"] is not None:
            ax.axhline(retrain["test_acc_after"], color="k", ls="--", lw=1, label="retrained without the union")
            if retrain.get("test_acc_before") is not None:
                ax.axhline(retrain["test_acc_before"], color="grey", ls=":", lw=1, label="original")
        ax.set_title({"full": "full D_R", "subsampled": "subsampled D_R", "no_retain": "without D_R"}[mode])
        ax.set_xlabel("request")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("test accuracy after the request (%)")
    fig.tight_layout()
    return fig


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


def write(result: dict[str, Any], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    name = result["profile"]
    json_path = out_dir / f"{name}.json"
    json_path.write_text(to_json(result))
    md_path = out_dir / f"{name}.md"
    md_path.write_text(markdown(result))
    paths = [json_path, md_path]
    panels = load_panels(out_dir / f"{name}.panels.npz")
    if panels:
        paths.append(confidence_histograms(
            panels, out_dir / f"{name}-confidence.png",
            title=f"True-class confidence, profile {name} (seed {result['seeds'][0]})"))
    if result["rows"]:
        gaps_path = out_dir / f"{name}-gaps.png"
        gaps_path.write_bytes(to_png_bytes(gap_figure(result["rows"])))
        paths.append(gaps_path)
    if result["successive"]:
        stream_path = out_dir / f"{name}-stream.png"
        stream_path.write_bytes(to_png_bytes(stream_figure(result["successive"], result["stream"])))
        paths.append(stream_path)
    return paths
