"""SalUn: random-label unlearning restricted to the most salient weights for D_F (mask frozen exactly)."""

from __future__ import annotations

import time

import torch.nn as nn

from unlearning.baselines.rl import parts_for
from unlearning.imageset import ImageSet
from unlearning.progress import Progress
from unlearning.specs import UnlearnConfig
from unlearning.unlearn import UnlearnResult, check_retain, finetune, result_from, saliency_mask


def unlearn(model: nn.Module, forget: ImageSet, retain: ImageSet | None, cfg: UnlearnConfig, *,
            holdout: ImageSet | None = None, progress: Progress | None = None) -> UnlearnResult:
    retain = check_retain(cfg, retain)
    start = time.perf_counter()
    masks = saliency_mask(model, forget, cfg.salun_ratio, progress=progress)
    mask_seconds = time.perf_counter() - start
    parts = parts_for(forget, retain, cfg, model.spec.num_classes)
    stats, rule, seconds = finetune(model, parts, cfg, forget, holdout=holdout, masks=masks, progress=progress)
    return result_from(model, stats, rule, {"saliency": mask_seconds, "fine-tune": seconds})
