"""GA (gradient ascent): minimise -CE on D_F. With the remaining data each epoch is two passes, as the
authors run it: a plain CE pass over D_R, then an undiluted ascent pass over D_F (mixed into one loader,
the ascent would be diluted by the remaining batches).
"""

from __future__ import annotations

import torch.nn as nn

from unlearning.imageset import ImageSet
from unlearning.loop import Part
from unlearning.progress import Progress
from unlearning.specs import UnlearnConfig
from unlearning.unlearn import UnlearnResult, check_retain, finetune, result_from, retain_part


def unlearn(model: nn.Module, forget: ImageSet, retain: ImageSet | None, cfg: UnlearnConfig, *,
            holdout: ImageSet | None = None, progress: Progress | None = None) -> UnlearnResult:
    retain = check_retain(cfg, retain)
    parts = [Part(forget.x, forget.y, sign=-1.0, augment=True, stage=1)]
    if retain is not None:
        parts.append(retain_part(retain, len(forget), cfg))  # stage 0: the D_R pass comes first
    stats, rule, seconds = finetune(model, parts, cfg, forget, holdout=holdout, progress=progress)
    return result_from(model, stats, rule, {"fine-tune": seconds})
