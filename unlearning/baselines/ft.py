"""FT: fine-tune on the remaining data only, hoping the forget set fades (catastrophic forgetting)."""

from __future__ import annotations

import torch.nn as nn

from unlearning.imageset import ImageSet
from unlearning.progress import Progress
from unlearning.specs import UnlearnConfig
from unlearning.unlearn import UnlearnResult, check_retain, finetune, result_from, retain_part


def unlearn(model: nn.Module, forget: ImageSet, retain: ImageSet | None, cfg: UnlearnConfig, *,
            holdout: ImageSet | None = None, progress: Progress | None = None) -> UnlearnResult:
    retain = check_retain(cfg, retain)
    stats, rule, seconds = finetune(model, [retain_part(retain, len(forget), cfg)], cfg, forget,
                                    holdout=holdout, progress=progress)
    return result_from(model, stats, rule, {"fine-tune": seconds})
