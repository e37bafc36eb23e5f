"""Confidence histograms (true-class probability per set, one panel per model) as PNG files or bytes.

Figures are built on matplotlib's object API with the Agg canvas, never pyplot: no display is needed,
no global figure state is shared between a service's threads, and nothing leaks if a caller forgets to
close a figure. One drawing function feeds both the file and the in-memory output.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# The sets every report shows keep their colour across panels and reports; any other set name takes
# the next colour of the fallback cycle in order of first appearance.
SET_COLORS = {"remaining": "tab:blue", "forget": "tab:red", "test": "tab:green"}
_FALLBACK_COLORS = ("tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan")


def _set_colors(panels: dict[str, dict[str, np.ndarray]]) -> dict[str, str]:
    colors = dict(SET_COLORS)
    extra = iter(_FALLBACK_COLORS)
    for sets in panels.values():
        for name in sets:
            if name not in colors:
                colors[name] = next(extra, "black")
    return colors


def _checked(panels: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    if not panels:
        raise ValueError("panels is empty: give at least one model's confidences")
    checked: dict[str, dict[str, np.ndarray]] = {}
    for model, sets in panels.items():
        if not sets:
            raise ValueError(f"panel {model!r} has no sets")
        checked[model] = {}
        for name, values in sets.items():
            arr = np.asarray(values, dtype=np.float64)
            if arr.ndim != 1 or len(arr) == 0:
                raise ValueError(f"panel {model!r}, set {name!r}: need a non-empty 1-D array, got shape {arr.shape}")
            if not np.all(np.isfinite(arr)) or arr.min() < 0.0 or arr.max() > 1.0:
                raise ValueError(f"panel {model!r}, set {name!r}: confidences must lie in [0, 1]")
            checked[model][name] = arr
    return checked


def confidence_figure(panels: dict[str, dict[str, np.ndarray]], title: str | None = None, bins: int = 20) -> Figure:
    """One subplot per model (panel key), overlaid density histograms of each set's true-class confidence."""
    panels = _checked(panels)
    if bins < 1:
        raise ValueError(f"bins must be positive, got {bins}")
    colors = _set_colors(panels)
    edges = np.linspace(0.0, 1.0, bins + 1)  # shared, so bar heights compare across sets and panels
    fig = Figure(figsize=(4.0 * len(panels), 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, (model, sets) in zip(axes, panels.items()):
        for name, values in sets.items():
            ax.hist(values, bins=edges, density=True, alpha=0.35, color=colors[name], label=f"{name} (n={len(values)})")
            ax.hist(values, bins=edges, density=True, histtype="step", color=colors[name])
        ax.set_title(model)
        ax.set_xlim(0.0, 1.0)
        ax.set_xlabel("true-class confidence")
        ax.legend(loc="upper left", fontsize="small")
    axes[0].set_ylabel("density")
    if title:
        fig.suptitle(title)
    return fig


def to_png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes, for embedding (e.g. base64 in HTML) without touching the filesystem."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def confidence_histograms_png(panels: dict[str, dict[str, np.ndarray]], title: str | None = None) -> bytes:
    """confidence_histograms, as PNG bytes."""
    return to_png_bytes(confidence_figure(panels, title))


def confidence_histograms(
    panels: dict[str, dict[str, np.ndarray]], path: str | Path, title: str | None = None
) -> Path:
    """Write the confidence histograms as a PNG at `path` (its folder must exist); returns the path."""
    path = Path(path)
    path.write_bytes(confidence_histograms_png(panels, title))
    return path


EVIDENCE_COLORS = {"test (never seen)": "tab:green", "remaining": "tab:blue", "forgotten now": "tab:red",
                   "forgotten earlier": "tab:orange"}  # fmt: skip
LOG_ODDS_LIMITS = (-30.0, 40.0)  # the evidence axis never reaches past these; outliers are drawn at its edge
SMALL_SET = 60  # sets this small are also drawn sample by sample: an ECDF of 4 points hides them


def evidence_figure(panels: dict[str, dict[str, np.ndarray]], *, alpha: float, title: str | None = None,
                    xlabel: str = "log-odds of true-class confidence") -> Figure:  # fmt: skip
    """One subplot per model: the empirical CDF of each set's membership score (e.g. the log-odds of the
    true-class confidence) and a dashed line where the never-seen test data's top `alpha` begins: forgotten samples
    right of it have p < alpha. A forgotten set whose curve lies on the test curve looks never seen; one
    shifted right is still remembered, one far left was over-unlearned (also detectable)."""
    if not panels:
        raise ValueError("panels is empty: give at least one model's scores")
    # one axis for every panel, spanning the bulk of all the scores, so that the panels compare at a glance
    every = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for sets in panels.values() for v in sets.values()])
    lo, hi = np.quantile(every[np.isfinite(every)], [0.002, 0.998]) if np.isfinite(every).any() else (-1.0, 1.0)
    pad = 0.05 * max(hi - lo, 1.0)
    lo, hi = max(lo - pad, LOG_ODDS_LIMITS[0]), min(hi + pad, LOG_ODDS_LIMITS[1])
    fig = Figure(figsize=(4.4 * len(panels), 3.9), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, (model, sets) in zip(axes, panels.items()):
        for name, values in sets.items():
            arr = np.clip(np.sort(np.asarray(values, dtype=np.float64)), lo, hi)
            if arr.ndim != 1 or len(arr) == 0 or not np.all(np.isfinite(arr)):
                raise ValueError(f"panel {model!r}, set {name!r}: need a non-empty 1-D array of finite scores")
            color = EVIDENCE_COLORS.get(name, "tab:purple")
            cdf = np.arange(1, len(arr) + 1) / len(arr)
            ax.step(np.concatenate([[lo], arr]), np.concatenate([[0.0], cdf]), where="post", color=color,
                    lw=2.0 if name.startswith("forgotten") else 1.4, label=f"{name} (n={len(arr)})")  # fmt: skip
            if len(arr) <= SMALL_SET:
                ax.plot(arr, cdf, "o", color=color, ms=5)
        test = next((v for k, v in sets.items() if k.startswith("test")), None)
        if test is not None:
            cut = float(np.quantile(np.asarray(test, dtype=np.float64), 1.0 - alpha))
            ax.axvline(min(max(cut, lo), hi), color="black", ls="--", lw=1)
            ax.text(min(max(cut, lo), hi), 0.98, f"p < {alpha:g} beyond ", fontsize="small", rotation=90,
                    va="top", ha="right")  # fmt: skip
        ax.set_title(model)
        ax.set_xlim(lo, hi)
        ax.set_ylim(0.0, 1.0)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("share of the set at or below")
    handles, labels = axes[-1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize="small")
    fig.suptitle((title + "\n" if title else "") + "curves further right = more member-like; a forgotten set on the "
                 "never-seen curve looks never seen", fontsize="medium")
    return fig


def history_figure(history: list[dict], *, min_pct: float, expected_pct: float) -> Figure:
    """The share of every sample forgotten so far that looks never seen, per version, with its 95% interval,
    against the pass line and what never-seen data gives."""
    if not history:
        raise ValueError("history is empty")
    versions = [str(h["version"]) for h in history]
    share = np.array([h["indistinguishable_pct"]["value"] for h in history])
    low = np.array([h["indistinguishable_pct"]["ci_low"] for h in history])
    high = np.array([h["indistinguishable_pct"]["ci_high"] for h in history])
    colors = {"pass": "tab:green", "fail": "tab:red", "inconclusive": "tab:gray"}
    fig = Figure(figsize=(max(4.5, 0.7 * len(history) + 2.5), 3.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    x = np.arange(len(history))
    ax.errorbar(x, share, yerr=[share - low, high - share], fmt="none", ecolor="black", capsize=4, lw=1)
    ax.scatter(x, share, c=[colors.get(h["verdict"], "black") for h in history], s=50, zorder=3)
    for xi, h in zip(x, history):
        ax.annotate(f"n={h['samples']}", (xi, high[xi]), textcoords="offset points", xytext=(0, 4),
                    ha="center", fontsize="small")  # fmt: skip
    ax.axhline(min_pct, color="tab:red", ls="--", lw=1, label=f"pass needs the interval above {min_pct:g}%")
    ax.axhline(expected_pct, color="tab:green", ls=":", lw=1, label=f"never-seen data: about {expected_pct:g}%")
    ax.set_xticks(x, [f"v{v}" for v in versions])
    ax.set_ylim(max(0.0, min(float(low.min()), min_pct) - 10.0), 110)
    ax.set_ylabel("% of forgotten samples\nthat look never seen")
    ax.set_xlabel("version (dot: its verdict, green pass, grey inconclusive, red fail)")
    ax.legend(loc="lower left", fontsize="small")
    return fig
