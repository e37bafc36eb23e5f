"""l1-sparse: FT plus alpha * ||theta||_1, alpha decaying linearly to 0 over the epochs (SalUn's FT_prune).

The AMUN reference code compounds the decay by mistake; this is the linear decay of the original.
"""

from __future__ import annotations

import torch.nn as nn

from unlearning.imageset import ImageSet
from unlearning.progress import Progress
from unlearning.specs import UnlearnConfig
from unlearning.unlearn import UnlearnResult, check_retain, finetune, result_from, retain_part


def unlearn(model: nn.Module, forget: ImageSet, retain: ImageSet | None, cfg: UnlearnConfig, *,
            holdout: ImageSet | None = None, progress: Progress | None = None) -> UnlearnResult:
    retain = check_retain(cfg, retain)

    def alpha(epoch: int) -> float:
        return cfg.l1_alpha * (1 - epoch / cfg.epochs)

    stats, rule, seconds = finetune(model, [retain_part(retain, len(forget), cfg)], cfg, forget,
                                    holdout=holdout, l1_alpha=alpha, progress=progress)
    return result_from(model, stats, rule, {"fine-tune": seconds})
