"""The audit of a new version: the core's report (unlearning.audit.report) over the sets the ledger names,
its HTML page, and the headline numbers kept on the version row (the next versions' history reads them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.nn as nn

from unlearning.audit import evidence as ev
from unlearning.audit.evaluate import RmiaAudit
from unlearning.audit.page import render_html
from unlearning.audit.plots import history_figure, to_png_bytes
from unlearning.audit.report import Thresholds, build_report, evidence_png
from unlearning.data import stratified_subset
from unlearning.imageset import ImageSet

RETAIN_SAMPLE = 2000  # remaining-data samples the audit measures (all of them when fewer remain)
AUDIT_SEED = 0  # MIS member sampling, the bootstrap and the remaining-data sample


@dataclass
class Audit:
    report: dict[str, Any]
    html: str
    metrics: dict[str, Any]


def audit_version(
    *,
    model: nn.Module,
    parent: nn.Module,
    original: nn.Module | None,
    forget: ImageSet,
    earlier: list[tuple[str, ImageSet]],
    remaining: ImageSet,
    test: ImageSet,
    rmia: RmiaAudit | None,
    context: dict[str, Any],
    history: list[dict[str, Any]] = (),
    original_recorded: dict[str, Any] | None = None,
) -> Audit:
    """Measure the new version against its parent and the original; `remaining` excludes every claimed
    sample; `history` holds the ancestors' `cumulative` headline entries, oldest first. `original` is None once
    the original's checkpoint was destroyed: `original_recorded` then carries its test accuracy as an earlier
    audit measured it (unlearning.audit.report.build_report)."""
    retain_sample = stratified_subset(remaining, min(len(remaining), RETAIN_SAMPLE), seed=AUDIT_SEED)
    thresholds = Thresholds()
    report = build_report(
        model=model,
        parent=parent,
        original=original,
        current=forget,
        earlier=earlier,
        retain_sample=retain_sample,
        test=test,
        rmia=rmia,
        thresholds=thresholds,
        context=context,
        history=history,
        seed=AUDIT_SEED,
        original_recorded=original_recorded,
    )
    figure = evidence_png(
        model=model,
        parent=parent,
        original=original,
        current=forget,
        retain_sample=retain_sample,
        test=test,
        earlier=earlier,
        rmia=rmia,
        versions={"version": context.get("version"), "parent": context.get("parent_version")},
        title=f"version {context.get('version')}: membership scores, forgotten vs never seen",
    )
    history_png = to_png_bytes(history_figure(report["history"], min_pct=thresholds.min_indistinguishable_pct,
                                              expected_pct=100.0 * (1.0 - ev.ALPHA)))  # fmt: skip
    return Audit(report=report, html=render_html(report, figure, history_png), metrics=headline(report))


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The numbers a version row shows without its report (percent): this version on the samples it forgot,
    the remaining data and the test set, the parent's test accuracy, the evidence and the verdict."""
    version = report["models"]["version"]
    current = version["current"]
    found = report["evidence"]["current"]
    metrics: dict[str, Any] = {
        "forget_acc": current["forget_acc"],
        "forget_conf": current["forget_conf"],
        "mis": current["mis"],
        "loss_auc": current["loss_auc"],
        "retain_acc": version["retain_acc"],
        "test_acc": version["test_acc"],
        "test_conf": version["test_conf"],
        "parent_test_acc": report["models"]["parent"]["test_acc"],
        "parent_forget_conf": report["models"]["parent"]["current"]["forget_conf"],
        "indistinguishable_pct": found["indistinguishable_pct"]["value"],
        "test_acc_drop_vs_original": (report["utility"]["test_acc_drop_vs_original"] or {}).get("value"),
        "verdict": report["verdict"],
        "cumulative": report["history"][-1],
    }
    if "rmia_ft_auc" in current:
        metrics["rmia_ft_auc"] = current["rmia_ft_auc"]
        metrics["rmia_reference_models"] = report["rmia"]["reference_models"]
    return metrics
