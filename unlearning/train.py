"""The training recipe that makes an original model and its retrained reference."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn as nn

from unlearning.imageset import ImageSet
from unlearning.loop import Part, Schedule, fit
from unlearning.models import build_model
from unlearning.progress import Progress
from unlearning.specs import ArchSpec, TrainConfig


@dataclass
class TrainResult:
    model: nn.Module
    seconds: float
    samples_seen: int  # forward+backward passes over single samples


def seeded_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def train_model(
    arch: ArchSpec,
    data: ImageSet,
    cfg: TrainConfig,
    *,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    phase: str = "train",
) -> TrainResult:
    """Train a freshly initialised `arch` on `data` with the recipe; same seed, same weights."""
    torch.manual_seed(cfg.seed)  # weight initialisation
    model = build_model(arch).to(device)
    start = time.perf_counter()
    stats = fit(
        model,
        [Part(data.x, data.y, augment=True)],
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        schedule=Schedule(cfg.lr, cfg.schedule, cfg.step_size, cfg.gamma),
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        augment=cfg.augment,
        generator=seeded_generator(cfg.seed),
        progress=progress,
        phase=phase,
    )
    return TrainResult(model=model, seconds=time.perf_counter() - start, samples_seen=stats.samples_seen)
