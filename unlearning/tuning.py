"""The paper's tuning procedure: choose each method's learning rate on a separate forget subset, against a
model retrained without that subset, by the smallest average gap. Run once per model; the chosen values
are stored with the grid and the scores that chose them, so a hyper-parameter is data with a provenance.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch.nn as nn

from unlearning.audit.evaluate import evaluate, gaps
from unlearning.imageset import ImageSet
from unlearning.loop import TrainingDiverged
from unlearning.methods import run_unlearning
from unlearning.progress import Progress
from unlearning.specs import UnlearnConfig


@dataclass
class LrChoice:
    method: str
    retain_access: bool
    subsampled: bool
    grid: list[float]
    avg_gap_mis: list[float]  # one per grid value, measured on the tuning subset (inf: training diverged)
    lr: float  # the chosen value
    tuning_forget_size: int


def tune_lr(
    model: nn.Module,
    base: UnlearnConfig,
    grid: list[float],
    *,
    forget: ImageSet,
    retain: ImageSet,
    retain_eval: ImageSet,
    test: ImageSet,
    reference: dict[str, float],
    holdout: ImageSet | None = None,
    progress: Progress | None = None,
) -> LrChoice:
    """Try every lr of `grid` for `base`'s method and setting; keep the one closest to `reference`.

    `forget` is the tuning subset (never an evaluated one), `reference` the metrics of a model retrained
    without it, measured with the same `retain_eval` and `test` sets.
    """
    if not grid:
        raise ValueError("the learning-rate grid is empty")
    scores = []
    for lr in grid:
        cfg = dataclasses.replace(base, lr=lr)
        try:
            result = run_unlearning(model, forget, retain if cfg.retain_access else None, cfg,
                                    holdout=holdout, progress=progress)
            metrics, _ = evaluate(result.model, forget, retain_eval, test)
        except TrainingDiverged:
            scores.append(float("inf"))
            continue
        scores.append(gaps(metrics, reference)["avg_gap_mis"])
    if all(np.isinf(scores)):
        raise TrainingDiverged(f"{base.method}: training diverged at every learning rate of {list(grid)}")
    best = int(np.argmin(scores))
    return LrChoice(base.method, base.retain_access, base.retain_multiple is not None, list(grid), scores,
                    grid[best], len(forget))
