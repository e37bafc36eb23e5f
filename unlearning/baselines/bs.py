"""BS (boundary shrink): relabel each forget image with the class a frozen copy of the original model
gives its FGSM neighbour (L_inf bound `bs_bound`), then train on the clean image with that label.

The frozen model and FGSM have no randomness, so the labels are computed once per request. The remaining
data is mixed in when it may be used, as for the other baselines.
"""

from __future__ import annotations

import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from unlearning.imageset import ImageSet
from unlearning.loop import Part
from unlearning.progress import Progress
from unlearning.specs import UnlearnConfig
from unlearning.unlearn import UnlearnResult, check_retain, finetune, result_from, retain_part


def neighbour_labels(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bound: float,
                     batch_size: int = 512) -> torch.Tensor:
    """The model's prediction at the FGSM point x + bound * sign(grad CE) of each sample."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    labels = []
    for i in range(0, len(y), batch_size):
        xb = x[i:i + batch_size].to(device).requires_grad_(True)
        yb = y[i:i + batch_size].to(device)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(xb), yb), xb)
        with torch.no_grad():
            labels.append(model((xb + bound * grad.sign()).clamp(0, 1)).argmax(1))
    model.train(was_training)
    return torch.cat(labels)


def unlearn(model: nn.Module, forget: ImageSet, retain: ImageSet | None, cfg: UnlearnConfig, *,
            holdout: ImageSet | None = None, progress: Progress | None = None) -> UnlearnResult:
    retain = check_retain(cfg, retain)
    start = time.perf_counter()
    labels = neighbour_labels(model, forget.x, forget.y, cfg.bs_bound)  # the model is still the original here
    attack_seconds = time.perf_counter() - start
    parts = [Part(forget.x, labels, augment=True)]
    if retain is not None:
        parts.append(retain_part(retain, len(forget), cfg))
    stats, rule, seconds = finetune(model, parts, cfg, forget, holdout=holdout, progress=progress)
    return result_from(model, stats, rule, {"attack": attack_seconds, "fine-tune": seconds},
                       attack_passes=len(forget))
