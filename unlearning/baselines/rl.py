"""RL (random label): train D_F towards random wrong labels, mixed with D_R when it may be used.

The wrong label is redrawn at every visit of a sample (once per epoch), as the authors do (SalUn: per
batch, which is the same thing with one visit per epoch): a label fixed for the whole request would teach
the model one specific wrong class per sample instead of "not the true one".
"""

from __future__ import annotations

import torch
import torch.nn as nn

from unlearning.imageset import ImageSet
from unlearning.loop import Part
from unlearning.models import spec_of
from unlearning.progress import Progress
from unlearning.specs import UnlearnConfig
from unlearning.unlearn import UnlearnResult, check_retain, finetune, result_from, retain_part


def random_wrong_labels(y: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """A uniformly random label different from the true one, per sample, drawn on the generator's device."""
    shift = torch.randint(1, num_classes, (len(y),), generator=generator, device=generator.device)
    return (y + shift.to(y.device)) % num_classes


def parts_for(forget: ImageSet, retain: ImageSet | None, cfg: UnlearnConfig, num_classes: int) -> list[Part]:
    def relabel(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return random_wrong_labels(y, num_classes, generator)

    parts = [Part(forget.x, forget.y, augment=True, relabel=relabel)]
    if retain is not None:
        parts.append(retain_part(retain, len(forget), cfg))
    return parts


def unlearn(model: nn.Module, forget: ImageSet, retain: ImageSet | None, cfg: UnlearnConfig, *,
            holdout: ImageSet | None = None, progress: Progress | None = None) -> UnlearnResult:
    retain = check_retain(cfg, retain)
    parts = parts_for(forget, retain, cfg, spec_of(model).num_classes)
    stats, rule, seconds = finetune(model, parts, cfg, forget, holdout=holdout, progress=progress)
    return result_from(model, stats, rule, {"fine-tune": seconds})
