"""Successive deletion requests (AMUN.md section 4): the model carries over from request to request,
each request gets a fresh optimiser, and the remaining data never again includes anything forgotten.

Two variants: "amun_a" searches D_A on the current model at every request (the paper's best), "amun"
reuses adversarial examples searched on the original model (cheaper to reason about, less faithful).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch.nn as nn

from unlearning.attack import closest_adversarial
from unlearning.imageset import ImageSet
from unlearning.methods import run_unlearning
from unlearning.progress import Progress
from unlearning.specs import UnlearnConfig
from unlearning.train import seeded_generator
from unlearning.unlearn import UnlearnResult

VARIANTS = ("amun_a", "amun")


@dataclass
class RequestOutcome:
    index: int  # 0-based position of the request in the sequence
    forget_ids: np.ndarray  # this request's samples
    forgotten_before: np.ndarray  # every sample forgotten by earlier requests
    retain_size: int  # size of the remaining data the request could use (0 without retain access)
    result: UnlearnResult


def remaining(train: ImageSet, forgotten: Sequence[str] | np.ndarray) -> ImageSet:
    """The training set without every sample forgotten so far: the only data a later request may train on."""
    return train.without(np.asarray(forgotten, dtype=str))


def successive_unlearn(
    original: nn.Module,
    train: ImageSet,
    requests: Sequence[Sequence[str]],
    cfg: UnlearnConfig,
    *,
    variant: str = "amun_a",
    holdout: ImageSet | None = None,
    progress: Progress | None = None,
) -> Iterator[RequestOutcome]:
    """Run the requests one after another, yielding after each (its model is `outcome.result.model`)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r} is not one of {VARIANTS}")
    model = original
    forgotten = np.array([], dtype=str)
    for k, ids in enumerate(requests):
        ids = np.asarray(ids, dtype=str)
        already = np.intersect1d(ids, forgotten)
        if len(already):
            raise ValueError(f"request {k} repeats {len(already)} already forgotten samples, "
                             f"e.g. {already[:5].tolist()}")
        forget = train.subset(train.positions(ids))
        retain = remaining(train, np.concatenate([forgotten, ids])) if cfg.retain_access else None
        extra = {}
        if variant == "amun" and cfg.method in ("amun", "amun_salun"):
            extra["adversarial"] = closest_adversarial(original, forget.x, forget.y, cfg.attack,
                                                       generator=seeded_generator(cfg.seed))
        result = run_unlearning(model, forget, retain, cfg, holdout=holdout, progress=progress, **extra)
        if "adversarial" in extra:
            result.attack_passes = extra["adversarial"].passes  # searched for this request, on the original
        yield RequestOutcome(k, ids, forgotten, len(retain) if retain is not None else 0, result)
        model = result.model
        forgotten = np.concatenate([forgotten, ids])
