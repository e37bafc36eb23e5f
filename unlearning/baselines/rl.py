"""RL (random label): train D_F towards a random wrong label, mixed with D_R when it may be used."""

from __future__ import annotations

import torch
import torch.nn as nn

from unlearning.imageset import ImageSet
from unlearning.loop import Part
from unlearning.models import spec_of
from unlearning.progress import Progress
from unlearning.specs import UnlearnConfig
from unlearning.train import seeded_generator
from unlearning.unlearn import UnlearnResult, check_retain, finetune, result_from, retain_part


def random_wrong_labels(y: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """A uniformly random label different from the true one, per sample (drawn once per request)."""
    shift = torch.randint(1, num_classes, (len(y),), generator=generator).to(y.device)
    return (y + shift) % num_classes


def parts_for(forget: ImageSet, retain: ImageSet | None, cfg: UnlearnConfig, num_classes: int) -> list[Part]:
    labels = random_wrong_labels(forget.y, num_classes, seeded_generator(cfg.seed + 1))
    parts = [Part(forget.x, labels, augment=True)]
    if retain is not None:
        parts.append(retain_part(retain, len(forget), cfg))
    return parts


def unlearn(model: nn.Module, forget: ImageSet, retain: ImageSet | None, cfg: UnlearnConfig, *,
            holdout: ImageSet | None = None, progress: Progress | None = None) -> UnlearnResult:
    retain = check_retain(cfg, retain)
    parts = parts_for(forget, retain, cfg, spec_of(model).num_classes)
    stats, rule, seconds = finetune(model, parts, cfg, forget, holdout=holdout, progress=progress)
    return result_from(model, stats, rule, {"fine-tune": seconds})
