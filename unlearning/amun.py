"""AMUN: fine-tune on the forget set together with its closest adversarial examples (AMUN.md section 3).

D_A is labelled with the model's own wrong predictions and kept fixed, in float, for every epoch of the
request. With retain access the mix is D_R u D_F u D_A (D_R possibly subsampled per epoch); without it,
D_F u D_A. With cfg.forget_in_mix False, D_F leaves the mix (D_R u D_A, or D_A alone). "amun_salun" adds
SalUn's saliency mask, which freezes the masked weights exactly.
"""

from __future__ import annotations

import time

import torch.nn as nn

from unlearning.attack import AdversarialSet, closest_adversarial
from unlearning.imageset import ImageSet
from unlearning.loop import Part
from unlearning.progress import Progress
from unlearning.specs import UnlearnConfig
from unlearning.train import seeded_generator
from unlearning.unlearn import UnlearnResult, check_retain, finetune, result_from, retain_part, saliency_mask


def unlearn(
    model: nn.Module,
    forget: ImageSet,
    retain: ImageSet | None,
    cfg: UnlearnConfig,
    *,
    holdout: ImageSet | None = None,
    progress: Progress | None = None,
    adversarial: AdversarialSet | None = None,
) -> UnlearnResult:
    """Unlearn `forget` from `model` in place.

    `adversarial` lets successive requests reuse examples computed on the original model (the cheaper
    "AMUN" variant); by default D_A is searched on `model` as it is now ("AMUN-A").
    """
    retain = check_retain(cfg, retain)
    start = time.perf_counter()
    masks = saliency_mask(model, forget, cfg.salun_ratio, progress=progress) if cfg.method == "amun_salun" else None
    if adversarial is None:
        adversarial = closest_adversarial(
            model, forget.x, forget.y, cfg.attack, generator=seeded_generator(cfg.seed), progress=progress
        )
        passes = adversarial.passes
    else:
        if len(adversarial.y) != len(forget):
            raise ValueError(f"adversarial set has {len(adversarial.y)} samples, the forget set {len(forget)}")
        passes = 0  # paid for by an earlier request
    attack_seconds = time.perf_counter() - start

    x_adv, y_adv = adversarial.usable()
    parts = [Part(x_adv, y_adv, augment=False)]
    if cfg.forget_in_mix:
        parts.insert(0, Part(forget.x, forget.y, augment=True))
    if retain is not None:
        parts.append(retain_part(retain, len(forget), cfg))
    stats, rule, ft_seconds = finetune(model, parts, cfg, forget, holdout=holdout, masks=masks, progress=progress)
    return result_from(
        model, stats, rule, {"attack": attack_seconds, "fine-tune": ft_seconds},
        attack_passes=passes, adversarial=adversarial.summary(),
    )
