"""The one SGD loop behind training, AMUN and every baseline.

Every method is "fine-tune on a mix of labelled parts": a part is a tensor set with a loss sign
(+1 cross-entropy, -1 gradient ascent), a flag for the training augmentation and, for the retain
subsampled mode, a per-epoch sample size. One shuffled loader runs over the concatenation, as in the
paper. An optional mask freezes weights exactly (no gradient, weight decay or momentum reaches them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from unlearning.imageset import augment_batch
from unlearning.progress import Progress, report
from unlearning.specs import AugmentSpec


class TrainingDiverged(ValueError):
    """The loss became non-finite: the learning rate is too high for this method and model."""


Relabel = Callable[[torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]  # (x, y, generator) -> labels


@dataclass
class Part:
    x: torch.Tensor  # N, C, H, W in [0, 1]
    y: torch.Tensor  # N labels the loss is taken against
    sign: float = 1.0  # +1: minimise CE; -1: gradient ascent on CE
    augment: bool = True  # apply the training augmentation (real images yes, adversarial examples no)
    per_epoch: int | None = None  # draw this many samples afresh each epoch (subsampled mode); None = all
    # labels computed per batch from the (augmented) images instead of `y`: random wrong labels redrawn at
    # every visit (RL, SalUn), or a frozen model's labels of the augmented neighbour (BS)
    relabel: Relabel | None = None
    # parts of one stage are shuffled together; within an epoch the stages run one after another, lowest
    # first (GA and BS as their authors run them: a pass over D_R, then an undiluted pass over D_F)
    stage: int = 0


@dataclass
class Schedule:
    lr: float
    kind: str = "step"  # "step" | "cosine" | "constant"
    step_size: int = 1  # step: epochs between decays
    gamma: float = 0.1  # step: decay factor

    def lr_at(self, epoch: int, frac: float, epochs: int) -> float:
        """Learning rate at a point of training: epoch index plus the fraction of it done."""
        if self.kind == "step":
            return self.lr * self.gamma ** (epoch // self.step_size)
        if self.kind == "cosine":
            return 0.5 * self.lr * (1 + math.cos(math.pi * (epoch + frac) / epochs))
        return self.lr


class MaskedSGD(torch.optim.Optimizer):
    """SGD with momentum and weight decay, where a 0 in a parameter's mask freezes that weight exactly.

    Weight decay is added to the gradient before the mask, so masked weights get neither gradient nor
    decay, their momentum buffer stays 0 and their value is bit-identical after every step. Without
    masks it is plain SGD (PyTorch's, no dampening, no Nesterov). One step is a handful of foreach
    kernels over all parameters, not several kernels per parameter: on a GPU the launches are the cost.
    """

    def __init__(self, params, lr: float, momentum: float, weight_decay: float,
                 masks: dict[nn.Parameter, torch.Tensor] | None = None) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))
        self.masks = masks or {}

    @torch.no_grad()
    def step(self, closure: Callable | None = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                d = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            else:
                d = torch._foreach_mul(grads, 1.0)  # a copy: the buffers below must not alias .grad
            masked = [(i, self.masks[p]) for i, p in enumerate(params) if p in self.masks]
            if masked:
                torch._foreach_mul_([d[i] for i, _ in masked], [m for _, m in masked])
            if group["momentum"]:
                states = [self.state[p] for p in params]
                if any("momentum_buffer" not in st for st in states):  # first step: the buffer is d itself
                    for st, di in zip(states, d):
                        st.setdefault("momentum_buffer", di)
                else:
                    bufs = [st["momentum_buffer"] for st in states]
                    torch._foreach_mul_(bufs, group["momentum"])
                    torch._foreach_add_(bufs, d)
                d = [st["momentum_buffer"] for st in states]
            torch._foreach_add_(params, d, alpha=-group["lr"])


@dataclass
class FitStats:
    epochs_run: int = 0
    steps: int = 0
    samples_seen: int = 0  # forward+backward passes over single samples
    epoch_loss: list[float] = field(default_factory=list)


# (epoch index, fraction of that epoch done, model) -> True to stop training now
CheckHook = Callable[[int, float, nn.Module], bool]
EpochStartHook = Callable[[int, nn.Module], None]  # (epoch index, model), before the epoch's first step

FINITE_CHECK_STEPS = 50  # steps between checks that the loss is finite (each check waits for the device)


def fit(
    model: nn.Module,
    parts: list[Part],
    *,
    epochs: int,
    batch_size: int,
    schedule: Schedule,
    momentum: float,
    weight_decay: float,
    augment: AugmentSpec,
    generator: torch.Generator,
    masks: dict[nn.Parameter, torch.Tensor] | None = None,
    l1_alpha: Callable[[int], float] | None = None,
    on_check: CheckHook | None = None,
    checks_per_epoch: int = 1,
    on_epoch_start: EpochStartHook | None = None,
    progress: Progress | None = None,
    phase: str = "fine-tune",
) -> FitStats:
    """Train `model` in place: each epoch, each stage of `parts` shuffled on its own; returns what was spent.

    The step never waits for the device: the loss is summed there and checked for being finite every
    FINITE_CHECK_STEPS steps and at each check point, augmentation draws its random numbers on the device,
    and on CUDA the forward pass runs under bf16 autocast with channels_last activations. `on_check` runs
    `checks_per_epoch` times per epoch, evenly spaced, the last at the epoch's end.
    """
    if not parts or all(len(p.y) == 0 for p in parts):
        raise ValueError("nothing to train on: every part is empty")
    if checks_per_epoch < 1:
        raise ValueError(f"checks_per_epoch must be at least 1, got {checks_per_epoch}")
    device = next(model.parameters()).device
    cuda = device.type == "cuda"
    if cuda:
        model.to(memory_format=torch.channels_last)
    # the device's own generator, seeded from the caller's: same seed, same run, no host-to-device copies
    dev_gen = generator if device.type == "cpu" else torch.Generator(device).manual_seed(
        int(torch.randint(0, 2**62, (1,), generator=generator)))
    opt = MaskedSGD(model.parameters(), lr=schedule.lr, momentum=momentum, weight_decay=weight_decay, masks=masks)
    stats = FitStats()
    stages = sorted({p.stage for p in parts})
    sizes = [p.per_epoch if p.per_epoch is not None else len(p.y) for p in parts]
    per_epoch_steps = sum(
        math.ceil(sum(n for p, n in zip(parts, sizes) if p.stage == st) / batch_size) for st in stages)
    total_steps = epochs * per_epoch_steps
    check_at = {round(per_epoch_steps * (k + 1) / checks_per_epoch) for k in range(checks_per_epoch)}
    for epoch in range(epochs):
        model.train()
        if on_epoch_start is not None:
            on_epoch_start(epoch, model)
            model.train()
        loss_sum = torch.zeros((), device=device)
        seen = 0
        step_in_epoch = 0
        stop = False
        for st in stages:
            stage_parts = [p for p in parts if p.stage == st]
            if not any(len(p.y) for p in stage_parts):
                continue
            x, y, sign, aug, part_of = _draw_epoch(stage_parts, generator, device)
            any_aug = any(p.augment for p in stage_parts)
            all_aug = all(p.augment for p in stage_parts)
            relabels = [(k, p.relabel) for k, p in enumerate(stage_parts) if p.relabel is not None]
            order = torch.randperm(len(y), generator=generator).to(device)
            n_batches = math.ceil(len(y) / batch_size)
            for b in range(n_batches):
                idx = order[b * batch_size:(b + 1) * batch_size]
                xb, yb, sb = x[idx], y[idx], sign[idx]
                if any_aug:
                    xa = augment_batch(xb, augment, dev_gen)
                    xb = xa if all_aug else torch.where(aug[idx][:, None, None, None], xa, xb)
                for k, relabel in relabels:  # over the whole batch, then kept where it is this part's
                    new = relabel(xb, yb, dev_gen)
                    yb = new if len(stage_parts) == 1 else torch.where(part_of[idx] == k, new, yb)
                lr = schedule.lr_at(epoch, step_in_epoch / per_epoch_steps, epochs)
                for group in opt.param_groups:
                    group["lr"] = lr
                if cuda:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                    logits = model(xb)
                loss = (sb * F.cross_entropy(logits.float(), yb, reduction="none")).mean()
                if l1_alpha is not None:
                    loss = loss + l1_alpha(epoch) * sum(p.abs().sum() for p in model.parameters())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += loss.detach() * len(idx)
                seen += len(idx)
                stats.steps += 1
                step_in_epoch += 1
                stats.samples_seen += len(idx)
                if stats.steps % FINITE_CHECK_STEPS == 0:
                    _check_finite(loss_sum, epoch, schedule)
                report(progress, phase, stats.steps, total_steps)
                if on_check is not None and step_in_epoch in check_at:
                    _check_finite(loss_sum, epoch, schedule)
                    stop = on_check(epoch, step_in_epoch / per_epoch_steps, model)
                    model.train()
                    if stop:
                        break
            if stop:
                break
        stats.epochs_run = epoch + 1
        stats.epoch_loss.append(_check_finite(loss_sum, epoch, schedule) / max(seen, 1))
        if stop:
            break
    model.eval()
    return stats


def _check_finite(loss_sum: torch.Tensor, epoch: int, schedule: Schedule) -> float:
    """The summed loss as a float (one wait for the device); raises if the loss became non-finite."""
    value = float(loss_sum)
    if not math.isfinite(value):
        raise TrainingDiverged(f"the loss became {value} in epoch {epoch + 1} (lr {schedule.lr}); "
                               "lower the learning rate")
    return value


def _draw_epoch(parts: list[Part], generator: torch.Generator, device: torch.device):
    """Concatenate the parts for one epoch, drawing a fresh subsample of each part that asks for one."""
    xs, ys, signs, augs, owners = [], [], [], [], []
    for k, p in enumerate(parts):
        x, y = p.x, p.y
        if p.per_epoch is not None and p.per_epoch < len(y):
            pick = torch.randperm(len(y), generator=generator)[: p.per_epoch].to(x.device)
            x, y = x[pick], y[pick]
        xs.append(x.to(device))
        ys.append(y.to(device))
        signs.append(torch.full((len(y),), float(p.sign), device=device))
        augs.append(torch.full((len(y),), p.augment, dtype=torch.bool, device=device))
        owners.append(torch.full((len(y),), k, dtype=torch.long, device=device))
    return torch.cat(xs), torch.cat(ys), torch.cat(signs), torch.cat(augs), torch.cat(owners)
