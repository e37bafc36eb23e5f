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
