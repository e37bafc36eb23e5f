"""BS (boundary shrink): relabel each forget image with the class a frozen copy of the model gives its FGSM
neighbour (L_inf bound `bs_bound`), then train on the image with that label.

As the authors run it, the labels are computed per batch on the augmented images (the neighbour of the
image actually trained on), and the frozen copy is refreshed from the model being unlearned at the start
of every epoch. With the remaining data each epoch is a D_R pass, then an undiluted D_F pass.
"""

from __future__ import annotations

import copy
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
        xb = x[i:i + batch_size].to(device).detach().requires_grad_(True)
        yb = y[i:i + batch_size].to(device)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(F.cross_entropy(model(xb), yb), xb)
        with torch.no_grad():
            labels.append(model((xb + bound * grad.sign()).clamp(0, 1)).argmax(1))
    model.train(was_training)
    return torch.cat(labels)


def unlearn(model: nn.Module, forget: ImageSet, retain: ImageSet | None, cfg: UnlearnConfig, *,
            holdout: ImageSet | None = None, progress: Progress | None = None) -> UnlearnResult:
    retain = check_retain(cfg, retain)
    frozen = copy.deepcopy(model).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    spent = {"seconds": 0.0, "passes": 0}  # the FGSM labelling, done inside the fine-tuning loop

    def refresh(epoch: int, current: nn.Module) -> None:
        frozen.load_state_dict(current.state_dict())

    def relabel(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        start = time.perf_counter()
        labels = neighbour_labels(frozen, x, y, cfg.bs_bound)
        spent["seconds"] += time.perf_counter() - start
        spent["passes"] += len(y)
        return labels

    parts = [Part(forget.x, forget.y, augment=True, relabel=relabel, stage=1)]
    if retain is not None:
        parts.append(retain_part(retain, len(forget), cfg))  # stage 0: the D_R pass comes first
    stats, rule, seconds = finetune(model, parts, cfg, forget, holdout=holdout, progress=progress,
                                    on_epoch_start=refresh)
    return result_from(model, stats, rule, {"attack": spent["seconds"], "fine-tune": seconds - spent["seconds"]},
                       attack_passes=spent["passes"])
