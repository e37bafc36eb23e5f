"""The console's plots as SVG text: the cumulative evidence per version and the deletion requests per week.

Pure functions of their input, drawn on matplotlib's object API with the Agg canvas (never pyplot, so no
figure outlives a call and no display is needed); text stays text in the SVG, so it is searchable and read
by screen readers, and the document carries a <title> and <desc> that say what the plot shows. The same input
gives the same document, and the documents of recent inputs are kept, as drawing is the slow part of a page.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from xml.sax.saxutils import escape

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

EVIDENCE_TITLE = "Cumulative forgetting evidence per version"
REQUESTS_PER_WEEK_TITLE = "Deletion requests per week"
NO_DATA = "no data yet"
VERSION_LABEL = "model version (number)"
AUC_LABEL = "membership AUC (%)"
ACCURACY_LABEL = "test accuracy (%)"
COUNT_LABEL = "deletion requests (count)"
WEEK_LABEL = "week starting (date)"
NEVER_SEEN = "never seen (50%)"

# Colour-blind-safe pairs (Okabe-Ito); every series is also told apart by marker, line style or hatching.
_BLUE, _ORANGE, _GREEN, _VERMILLION, _GREY = "#0072B2", "#E69F00", "#009E73", "#D55E00", "#777777"
# matplotlib's rcParams are process-wide and the console renders in a thread pool: one render at a time,
# so a concurrent call never sees another's temporary settings (or their restoration mid-draw).
_RENDER_LOCK = threading.Lock()
_CACHED = 32  # documents kept per plot (see _evidence_svg)
_ROUNDING = 1e-6  # percentage points a float sum may stray past a bound
# _LAYOUT: margins are fixed by hand (room for the axis labels, and the legend right of the plot area) rather
# than by matplotlib's constrained layout, which measures every text twice and doubled the time to render


@dataclass(frozen=True)
class EvidencePoint:
    """One model version's cumulative evidence; every value is a percentage, None where not measured."""

    version: int
    union_auc: float | None  # membership AUC on every sample forgotten up to this version
    union_auc_low: float | None  # its interval's lower bound
    union_auc_high: float | None  # and upper bound
    test_acc: float | None  # this version's test accuracy
    original_test_acc: float | None  # the original model's, on the same test set


@dataclass(frozen=True)
class WeekCount:
    """Deletion requests received in the week that starts on week_start, by how they stand."""

    week_start: dt.date
    on_time: int  # completed by their due date
    late: int  # completed after it, or overdue
    open: int  # still in flight and not yet due


def evidence_svg(points: list[EvidencePoint]) -> str:
    """Two panels over the versions: the forgotten union's membership AUC with its interval against the
    50% of samples never seen, and test accuracy against the original's. ValueError on bad values."""
    return _evidence_svg(tuple(points))


def requests_per_week_svg(weeks: list[WeekCount]) -> str:
    """Stacked bars per week: on time (solid), late (hatched ///) and still open (white with horizontal
    lines), on a date axis, so weeks without requests show as gaps. ValueError on negative counts or a week
    given twice."""
    return _requests_per_week_svg(tuple(weeks))


# Drawing takes matplotlib 50-150 ms, more than the rest of a page; the plots change only when a version is
# audited or a request received or answered, so the documents of recent inputs are kept (a few MB at most).
# An error is raised again each time, never kept.
@lru_cache(maxsize=_CACHED)
def _evidence_svg(points: tuple[EvidencePoint, ...]) -> str:
    if not points:
        return _empty_svg(EVIDENCE_TITLE, "No model version has been audited yet.")
    checked = _checked_points(list(points))
    return _svg(_evidence_figure(checked), EVIDENCE_TITLE, _evidence_description(checked))


@lru_cache(maxsize=_CACHED)
def _requests_per_week_svg(weeks: tuple[WeekCount, ...]) -> str:
    if not weeks:
        return _empty_svg(REQUESTS_PER_WEEK_TITLE, "No deletion request has been received yet.")
    checked = _checked_weeks(list(weeks))
    return _svg(_requests_per_week_figure(checked), REQUESTS_PER_WEEK_TITLE, _weeks_description(checked))


# ---- figures ----


def _evidence_figure(points: list[EvidencePoint]) -> Figure:
    versions = [p.version for p in points]
    fig = Figure(figsize=(8.0, 5.2))
    FigureCanvasAgg(fig)
    auc_ax, acc_ax = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    fig.subplots_adjust(left=0.105, right=0.765, bottom=0.095, top=0.885, hspace=0.22)  # see _LAYOUT
    fig.suptitle(EVIDENCE_TITLE)
    few = len(points) <= 60  # beyond that markers and error bars would hide the line

    # a version not measured is a gap in its line (NaN), not a segment drawn across it
    auc = _series(p.union_auc for p in points)
    low = _series(p.union_auc_low if p.union_auc is not None else None for p in points)
    high = _series(p.union_auc_high if p.union_auc is not None else None for p in points)
    if any(math.isfinite(v) for v in low) and any(math.isfinite(v) for v in high):
        auc_ax.fill_between(
            versions, low, high, color=_BLUE, alpha=0.18, linewidth=0,
            label="AUC interval",
        )  # fmt: skip
        if few:
            auc_ax.errorbar(
                versions, auc, yerr=[[a - b for a, b in zip(auc, low)], [b - a for a, b in zip(auc, high)]],
                fmt="none", ecolor=_BLUE, elinewidth=1, capsize=3,
            )  # fmt: skip
    auc_ax.plot(versions, auc, color=_BLUE, linestyle="-", marker="o" if few else None, markersize=5,
                label="all forgotten samples")  # fmt: skip
    auc_ax.axhline(50.0, color=_GREY, linestyle="--", linewidth=1.2, label=NEVER_SEEN)
    auc_ax.set_title("Can an attacker tell the forgotten samples were trained on?", fontsize="medium")
    auc_ax.set_ylabel(AUC_LABEL)
    auc_ax.grid(axis="y", alpha=0.3)
    _legend_outside(auc_ax)
    if all(p.union_auc is None for p in points):
        auc_ax.text(0.5, 0.75, "no AUC measured yet", transform=auc_ax.transAxes, ha="center", color=_GREY)

    acc_ax.plot(versions, _series(p.original_test_acc for p in points), color=_ORANGE, linestyle="--",
                marker="^" if few else None, markersize=5, label="original model")  # fmt: skip
    acc_ax.plot(versions, _series(p.test_acc for p in points), color=_GREEN, linestyle="-",
                marker="s" if few else None, markersize=5, label="this version")  # fmt: skip
    acc_ax.set_title("Does the model still work?", fontsize="medium")
    acc_ax.set_ylabel(ACCURACY_LABEL)
    acc_ax.set_xlabel(VERSION_LABEL)
    acc_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    acc_ax.grid(axis="y", alpha=0.3)
    _legend_outside(acc_ax)
    if all(p.test_acc is None and p.original_test_acc is None for p in points):
        acc_ax.text(0.5, 0.5, "no accuracy measured yet", transform=acc_ax.transAxes, ha="center", color=_GREY)
    # the first and last versions' markers and error bars clear the axes' edges (one version: centred)
    pad = max(0.5 if len(versions) > 1 else 1.0, 0.02 * (versions[-1] - versions[0]))
    acc_ax.set_xlim(versions[0] - pad, versions[-1] + pad)
    return fig


def _requests_per_week_figure(weeks: list[WeekCount]) -> Figure:
    starts = [w.week_start for w in weeks]
    on_time = [w.on_time for w in weeks]
    late = [w.late for w in weeks]
    still_open = [w.open for w in weeks]
    fig = Figure(figsize=(8.0, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    fig.subplots_adjust(left=0.105, right=0.835, bottom=0.175, top=0.9)  # see _LAYOUT
    # bars span the week from its first day (align=edge), a day short of the next so neighbours stay apart
    bar = {"width": 6.0, "align": "edge", "edgecolor": "black", "linewidth": 0.6}
    ax.bar(starts, on_time, color=_GREEN, label="on time", **bar)
    ax.bar(starts, late, bottom=on_time, color=_VERMILLION, hatch="///", label="late", **bar)
    ax.bar(starts, still_open, bottom=[a + b for a, b in zip(on_time, late)], color="white", hatch="-",
           label="still open", **bar)  # fmt: skip
    ax.set_title(REQUESTS_PER_WEEK_TITLE)
    ax.set_ylabel(COUNT_LABEL)
    ax.set_xlabel(WEEK_LABEL)
    locator = AutoDateLocator(minticks=3, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(starts[0] - dt.timedelta(days=3), starts[-1] + dt.timedelta(days=10))
    ax.grid(axis="y", alpha=0.3)
    _legend_outside(ax, reverse=True)  # top to bottom, as the bars stack
    return fig


def _series(values: Iterable[float | None]) -> list[float]:
    return [math.nan if v is None else v for v in values]


def _legend_outside(ax: Axes, reverse: bool = False) -> None:
    # right of the plot area, so it never covers a point whatever the data
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", borderaxespad=0.0, reverse=reverse)


# ---- input checks ----


def _checked_points(points: list[EvidencePoint]) -> list[EvidencePoint]:
    """The points in version order, each value a percentage; a value a rounding error outside [0, 100] or its
    interval (a float sum of two percentages can land a hair past 100) is taken as the bound it missed."""
    seen: set[int] = set()
    checked = []
    for p in points:
        if p.version in seen:
            raise ValueError(f"version {p.version} is given twice")
        seen.add(p.version)
        values = {}
        for name in ("union_auc", "union_auc_low", "union_auc_high", "test_acc", "original_test_acc"):
            value = getattr(p, name)
            if value is not None and not (math.isfinite(value) and -_ROUNDING <= value <= 100.0 + _ROUNDING):
                raise ValueError(f"version {p.version}: {name} must be a percentage in [0, 100], got {value}")
            values[name] = None if value is None else min(max(float(value), 0.0), 100.0)
        auc, low, high = values["union_auc"], values["union_auc_low"], values["union_auc_high"]
        if auc is not None and low is not None and high is not None:
            if not low - _ROUNDING <= auc <= high + _ROUNDING:
                raise ValueError(f"version {p.version}: the interval [{low}, {high}] does not hold union_auc {auc}")
            values["union_auc_low"], values["union_auc_high"] = min(low, auc), max(high, auc)
        checked.append(EvidencePoint(version=p.version, **values))
    return sorted(checked, key=lambda p: p.version)


def _checked_weeks(weeks: list[WeekCount]) -> list[WeekCount]:
    seen: set[dt.date] = set()
    for w in weeks:
        if w.week_start in seen:
            raise ValueError(f"week {w.week_start.isoformat()} is given twice")
        seen.add(w.week_start)
        for name in ("on_time", "late", "open"):
            if getattr(w, name) < 0:
                raise ValueError(f"week {w.week_start.isoformat()}: {name} must not be negative")
    return sorted(weeks, key=lambda w: w.week_start)


# ---- text for screen readers ----


def _evidence_description(points: list[EvidencePoint]) -> str:
    last = points[-1]
    parts = [f"{len(points)} versions, {points[0].version} to {last.version}." if len(points) > 1 else "1 version."]
    if last.union_auc is not None:
        interval = ""
        if last.union_auc_low is not None and last.union_auc_high is not None:
            interval = f" (interval {last.union_auc_low:.1f} to {last.union_auc_high:.1f}%)"
        parts.append(f"Version {last.version}: membership AUC of all forgotten samples {last.union_auc:.1f}%"
                     f"{interval}; 50% means never seen.")  # fmt: skip
    if last.test_acc is not None:
        against = "" if last.original_test_acc is None else f" against the original's {last.original_test_acc:.1f}%"
        parts.append(f"Test accuracy {last.test_acc:.1f}%{against}.")
    return " ".join(parts)


def _weeks_description(weeks: list[WeekCount]) -> str:
    total = {name: sum(getattr(w, name) for w in weeks) for name in ("on_time", "late", "open")}
    span = weeks[0].week_start.isoformat()
    if len(weeks) > 1:
        span = f"{len(weeks)} weeks from {span} to {weeks[-1].week_start.isoformat()}"
    else:
        span = f"the week of {span}"
    return f"Over {span}: {total['on_time']} on time, {total['late']} late, {total['open']} still open."


# ---- rendering ----


def _empty_svg(title: str, description: str) -> str:
    return _svg(_empty_figure(title), title, f"{description} ({NO_DATA})")


def _empty_figure(title: str) -> Figure:
    fig = Figure(figsize=(4.0, 1.4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.set_axis_off()
    ax.set_title(title, fontsize="medium")
    ax.text(0.5, 0.4, NO_DATA, transform=ax.transAxes, ha="center", va="center", color=_GREY, fontsize="large")
    return fig


@contextmanager
def _svg_settings() -> Iterator[None]:
    # text as <text> (not glyph paths): smaller, searchable, readable by assistive technology; a fixed
    # hash salt makes element ids, and so the document, the same for the same input
    with _RENDER_LOCK, matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "console"}):
        yield


def _svg(fig: Figure, title: str, description: str) -> str:
    buffer = io.StringIO()
    with _svg_settings():
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    svg = _STYLE_ELEMENT.sub("", buffer.getvalue(), count=1)
    svg = _STYLED_TAG.sub(_presentation_attributes, svg)
    # the root's first children name the image for screen readers (role=img takes its name from <title>);
    # the root's line joins and caps stand in for the <style> element taken out, and are inherited
    root_tag_end = svg.index(">", svg.index("<svg"))  # the '>' closing the root's opening tag
    accessible = (
        f' role="img" stroke-linejoin="round" stroke-linecap="butt">'
        f"\n <title>{escape(title)}</title>\n <desc>{escape(description)}</desc>"
    )
    return svg[:root_tag_end] + accessible + svg[root_tag_end + 1 :]


# The console's Content-Security-Policy (style-src 'self') blocks inline CSS: a plot opened on its own would
# draw every shape black. matplotlib writes its styles as style="..." attributes and one <style> element;
# every property it uses (fill, stroke, font-size, text-anchor, ...) is also an SVG presentation attribute,
# which no policy blocks, so each declaration becomes one.
_STYLE_ELEMENT = re.compile(r"\s*<style[^>]*>[^<]*</style>")
_STYLED_TAG = re.compile(r'<[a-zA-Z]+\s[^>]*\bstyle="[^"]*"[^>]*>')
_STYLE_ATTRIBUTE = re.compile(r'\sstyle="([^"]*)"')


def _presentation_attributes(tag: re.Match[str]) -> str:
    text = tag.group(0)
    declarations = _STYLE_ATTRIBUTE.search(text)
    assert declarations is not None  # _STYLED_TAG matched it
    text = text[: declarations.start()] + text[declarations.end() :]
    for declaration in declarations.group(1).split(";"):
        name, _, value = (part.strip() for part in declaration.partition(":"))
        if not name:
            continue
        value = value.replace('"', "'")
        existing = re.compile(rf'\s{re.escape(name)}="[^"]*"')
        if existing.search(text):  # the style's value wins, as it did over the attribute
            text = existing.sub(f' {name}="{value}"', text, count=1)
        else:
            end = len(text) - (2 if text.endswith("/>") else 1)
            text = f'{text[:end]} {name}="{value}"{text[end:]}'
    return text
