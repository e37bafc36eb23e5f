"""One model's unlearning metrics: accuracies on D_F, D_R and D_T, MIS, and RMIA's forget-vs-test AUC.

The benchmark, the tuning procedure and the service's audit report all call `evaluate`, so a number means
the same thing wherever it appears.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from unlearning.audit.metrics import accuracy, average_gap, predict_logits, true_class_prob
from unlearning.audit.mis import mis_score
from unlearning.audit.rmia import forget_test_auc, rmia_scores, soft_margin_taylor
from unlearning.imageset import ImageSet
from unlearning.loop import TrainingDiverged

ACC_KEYS = ("forget_acc", "retain_acc", "test_acc")
GAP_KEYS_MIS = ACC_KEYS + ("mis",)
GAP_KEYS_RMIA = ACC_KEYS + ("rmia_ft_auc",)


class RmiaAudit:
    """Offline (or online) RMIA with a fixed set of reference models, evaluated once on every point.

    Reference model i was trained on the training samples where `ref_in_train[i]` is True and on no
    test sample. Test samples in `population` are the population z; they must not be scored.
    """

    def __init__(
        self,
        ref_models: list[nn.Module],
        ref_in_train: np.ndarray,  # k, N_train bool
        train: ImageSet,
        test: ImageSet,
        population: np.ndarray,  # positions in `test`
        *,
        mode: str = "offline",
        offline_a: float = 0.3,
        gamma: float = 2.0,
    ) -> None:
        if ref_in_train.shape != (len(ref_models), len(train)):
            raise ValueError(f"ref_in_train has shape {ref_in_train.shape}, expected {(len(ref_models), len(train))}")
        self.k, self.mode, self.offline_a, self.gamma = len(ref_models), mode, offline_a, gamma
        self.ref_in_train = ref_in_train
        self._train_pos = {sid: i for i, sid in enumerate(train.ids.tolist())}
        self._test_pos = {sid: i for i, sid in enumerate(test.ids.tolist())}
        self.population = test.subset(population)
        self._pop_pos = np.asarray(population)
        self.ref_train = np.stack([_signal(m, train) for m in ref_models])  # k, N_train
        self.ref_test = np.stack([_signal(m, test) for m in ref_models])  # k, N_test

    def scores(self, model: nn.Module, forget: ImageSet, forget_logits: torch.Tensor,
               test: ImageSet, test_logits: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """RMIA score of every forgotten sample and of every scored test sample (non-members)."""
        f_pos = np.array([self._train_pos[s] for s in forget.ids.tolist()])
        t_pos = np.array([self._test_pos[s] for s in test.ids.tolist()])
        if np.intersect1d(t_pos, self._pop_pos).size:
            raise ValueError("scored test samples overlap the RMIA population")
        pop_logits = predict_logits(model, self.population.x)
        target = np.concatenate([
            _taylor(forget_logits, forget.y), _taylor(test_logits, test.y), _taylor(pop_logits, self.population.y),
        ])
        # soft_margin_taylor leaves (0, 1] for very low logits (see its docstring): say how often it happened
        self.last_outside_share = float(np.mean(~((target > 0) & (target <= 1))))
        ref = np.concatenate([self.ref_train[:, f_pos], self.ref_test[:, t_pos], self.ref_test[:, self._pop_pos]],
                             axis=1)
        never_in = np.zeros((self.k, len(t_pos) + len(self._pop_pos)), bool)  # test points trained no reference
        ref_in = np.concatenate([self.ref_in_train[:, f_pos], never_in], axis=1)
        population = np.arange(len(f_pos) + len(t_pos), len(target))
        scores = rmia_scores(target, ref, ref_in, population, mode=self.mode, offline_a=self.offline_a,
                             gamma=self.gamma)
        return scores[: len(f_pos)], scores[len(f_pos): len(f_pos) + len(t_pos)]

    def ft_auc(self, model: nn.Module, forget: ImageSet, forget_logits: torch.Tensor,
               test: ImageSet, test_logits: torch.Tensor, seeds=(0, 1, 2)) -> tuple[float, float]:
        """ROC-AUC (percent) of RMIA scores, D_F positives vs D_T negatives; mean and std over seeds."""
        forget_scores, test_scores = self.scores(model, forget, forget_logits, test, test_logits)
        return forget_test_auc(forget_scores, test_scores, seeds=seeds)


def _taylor(logits: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # counted in RmiaAudit.last_outside_share instead
        return soft_margin_taylor(logits, y)


def _signal(model: nn.Module, data: ImageSet) -> np.ndarray:
    return _taylor(predict_logits(model, data.x), data.y)


@dataclass
class Confidences:
    """True-class confidence per set, kept for the histograms of the report."""

    forget: np.ndarray
    retain: np.ndarray
    test: np.ndarray


def evaluate(
    model: nn.Module,
    forget: ImageSet,
    retain: ImageSet,
    test: ImageSet,
    *,
    rmia: RmiaAudit | None = None,
    seed: int = 0,
) -> tuple[dict[str, float], Confidences]:
    """Metrics of `model` (percent): accuracies, MIS and, with reference models, RMIA forget-vs-test AUC.

    `retain` may be a sample of D_R; MIS trains its attack on |D_T| of it.
    """
    f_logits = predict_logits(model, forget.x)
    r_logits = predict_logits(model, retain.x)
    t_logits = predict_logits(model, test.x)
    if not all(torch.isfinite(z).all() for z in (f_logits, r_logits, t_logits)):
        raise TrainingDiverged("the model's outputs are not finite: its training diverged")
    conf = Confidences(
        forget=true_class_prob(f_logits, forget.y),
        retain=true_class_prob(r_logits, retain.y),
        test=true_class_prob(t_logits, test.y),
    )
    metrics = {
        "forget_acc": accuracy(f_logits, forget.y),
        "retain_acc": accuracy(r_logits, retain.y),
        "test_acc": accuracy(t_logits, test.y),
        "mis": mis_score(conf.forget, conf.retain, conf.test, seed=seed),
        "forget_conf": float(conf.forget.mean()),
        "test_conf": float(conf.test.mean()),
    }
    if rmia is not None:
        metrics["rmia_ft_auc"], metrics["rmia_ft_auc_std"] = rmia.ft_auc(model, forget, f_logits, test, t_logits)
        metrics["rmia_signal_outside_share"] = rmia.last_outside_share
    return metrics, conf


def gaps(metrics: dict[str, float], reference: dict[str, float]) -> dict[str, float]:
    """Average gap to the retrained reference, MIS-based and (when measured) RMIA-based."""
    out = {"avg_gap_mis": average_gap(metrics, reference, GAP_KEYS_MIS)}
    if "rmia_ft_auc" in metrics and "rmia_ft_auc" in reference:
        out["avg_gap_rmia"] = average_gap(metrics, reference, GAP_KEYS_RMIA)
    return out
