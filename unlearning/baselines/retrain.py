"""Retrain: train from scratch on D_R with the original recipe; the gold standard every gap is taken to."""

from __future__ import annotations

import torch.nn as nn

from unlearning.imageset import ImageSet
from unlearning.models import spec_of
from unlearning.progress import Progress
from unlearning.specs import UnlearnConfig
from unlearning.train import train_model
from unlearning.unlearn import UnlearnResult, check_retain


def unlearn(model: nn.Module, forget: ImageSet, retain: ImageSet | None, cfg: UnlearnConfig, *,
            holdout: ImageSet | None = None, progress: Progress | None = None) -> UnlearnResult:
    """Returns a new model; `model` only lends its architecture and device."""
    retain = check_retain(cfg, retain)
    device = next(model.parameters()).device
    trained = train_model(spec_of(model), retain, cfg.recipe, device=device, progress=progress, phase="retrain")
    return UnlearnResult(model=trained.model, seconds={"train": trained.seconds},
                         samples_seen=trained.samples_seen, epochs_run=cfg.recipe.epochs)
