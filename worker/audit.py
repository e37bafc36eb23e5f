"""The audit of a new version: the core's report (unlearning.audit.report) over the sets the ledger names,
its HTML page, and the headline numbers kept on the version row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch.nn as nn

from unlearning.audit.evaluate import RmiaAudit
from unlearning.audit.report import build_report, histograms_png, render_html
from unlearning.data import stratified_subset
from unlearning.imageset import ImageSet

RETAIN_SAMPLE = 2000  # remaining-data samples the audit measures (all of them when fewer remain)
AUDIT_SEED = 0  # MIS member sampling and the remaining-data sample


@dataclass
class Audit:
    report: dict[str, Any]
    html: str
    metrics: dict[str, Any]


def audit_version(
    *,
    model: nn.Module,
    parent: nn.Module,
    original: nn.Module,
    forget: ImageSet,
    earlier: list[tuple[str, ImageSet]],
    remaining: ImageSet,
    test: ImageSet,
    rmia: RmiaAudit | None,
    context: dict[str, Any],
) -> Audit:
    """Measure the new version against its parent and the original; `remaining` excludes every claimed sample."""
    retain_sample = stratified_subset(remaining, min(len(remaining), RETAIN_SAMPLE), seed=AUDIT_SEED)
    report = build_report(
        model=model,
        parent=parent,
        original=original,
        current=forget,
        earlier=earlier,
        retain_sample=retain_sample,
        test=test,
        rmia=rmia,
        context=context,
        seed=AUDIT_SEED,
    )
    png = histograms_png(
        model=model,
        parent=parent,
        original=original,
        current=forget,
        retain_sample=retain_sample,
        test=test,
        earlier=earlier,
        title=f"version {context.get('version')}",
    )
    return Audit(report=report, html=render_html(report, png), metrics=headline(report))


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The numbers a version row shows without its report (percent): this version on the samples it forgot,
    the remaining data and the test set, the parent's test accuracy, and the verdict."""
    version = report["models"]["version"]
    current = version["current"]
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
        "verdict": report["verdict"],
    }
    if "rmia_ft_auc" in current:
        metrics["rmia_ft_auc"] = current["rmia_ft_auc"]
        metrics["rmia_reference_models"] = report["rmia"]["reference_models"]
    if version["earlier"]:
        metrics["earlier_loss_auc_max"] = float(np.max([entry["loss_auc"] for entry in version["earlier"]]))
    return metrics
