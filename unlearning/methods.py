"""The registry of unlearning methods by name, and the one entry point callers use."""

from __future__ import annotations

import copy

import torch.nn as nn

from unlearning import amun
from unlearning.baselines import bs, ft, ga, l1_sparse, retrain, rl, salun
from unlearning.imageset import ImageSet
from unlearning.progress import Progress
from unlearning.specs import METHODS, UnlearnConfig
from unlearning.unlearn import Unlearner, UnlearnResult

UNLEARNERS: dict[str, Unlearner] = {
    "retrain": retrain.unlearn,
    "amun": amun.unlearn,
    "amun_salun": amun.unlearn,
    "ft": ft.unlearn,
    "rl": rl.unlearn,
    "ga": ga.unlearn,
    "bs": bs.unlearn,
    "l1_sparse": l1_sparse.unlearn,
    "salun": salun.unlearn,
}
assert set(UNLEARNERS) == set(METHODS)


def run_unlearning(
    model: nn.Module,
    forget: ImageSet,
    retain: ImageSet | None,
    cfg: UnlearnConfig,
    *,
    holdout: ImageSet | None = None,
    progress: Progress | None = None,
    **kwargs,
) -> UnlearnResult:
    """Unlearn `forget` from a copy of `model` with the method `cfg.method`; `model` itself is untouched."""
    if len(forget) == 0:
        raise ValueError("the forget set is empty")
    work = copy.deepcopy(model)
    return UNLEARNERS[cfg.method](work, forget, retain, cfg, holdout=holdout, progress=progress, **kwargs)
