"""Per-sample model outputs and the simple scores built on them: accuracy, confidence, loss, gaps, loss AUC."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score


def _model_device(model: torch.nn.Module) -> torch.device:
    # A parameter-free model (e.g. a fixed feature map) has no parameters to ask; buffers or CPU then.
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def predict_logits(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits of `model` on `x` (N, ...), as float32 on the CPU; the model's train/eval mode is restored."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
    device = _model_device(model)
    was_training = model.training
    model.eval()  # batch-norm running stats and no dropout: the model as it is deployed
    try:
        with torch.no_grad():
            chunks = [model(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    if not chunks:
        raise ValueError("x is empty: no samples to predict")
    return torch.cat(chunks)  # N, C


def _as_tensors(logits: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.as_tensor(logits).detach().cpu()
    y = torch.as_tensor(y).detach().cpu()
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D (N, C), got shape {tuple(logits.shape)}")
    if y.ndim != 1 or len(y) != len(logits):
        raise ValueError(f"y must be 1-D with one label per logits row ({len(logits)}), got shape {tuple(y.shape)}")
    if len(y) == 0:
        raise ValueError("logits and y are empty")
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ValueError(f"y must hold integer class labels, got dtype {y.dtype}")
    y = y.long()
    if int(y.min()) < 0 or int(y.max()) >= logits.shape[1]:
        raise ValueError(f"labels must lie in [0, {logits.shape[1]}), got range [{int(y.min())}, {int(y.max())}]")
    return logits, y


def accuracy(logits: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> float:
    """Top-1 accuracy in percent."""
    logits, y = _as_tensors(logits, y)
    return 100.0 * float((logits.argmax(dim=1) == y).double().mean())


def true_class_prob(logits: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> np.ndarray:
    """Softmax probability of the true label per sample (N,), float64."""
    logits, y = _as_tensors(logits, y)
    # float64 so that confidences of 1 - 1e-9 (memorised samples) stay distinguishable from 1.
    prob = torch.softmax(logits.double(), dim=1)
    return prob.gather(1, y[:, None]).squeeze(1).numpy()


def cross_entropy_per_sample(logits: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> np.ndarray:
    """Cross-entropy loss per sample (N,), float64."""
    logits, y = _as_tensors(logits, y)
    return F.cross_entropy(logits.double(), y, reduction="none").numpy()


def average_gap(result: dict[str, float], reference: dict[str, float], keys: tuple[str, ...]) -> float:
    """Mean of |result[k] - reference[k]| over keys (AMUN.md section 6: the "average gap to retrain")."""
    if not keys:
        raise ValueError("keys is empty: no metric to compare")
    missing = [k for k in keys if k not in result or k not in reference]
    if missing:
        raise ValueError(
            f"metric(s) {missing} missing from result ({sorted(result)}) or reference ({sorted(reference)})"
        )
    return float(np.mean([abs(float(result[k]) - float(reference[k])) for k in keys]))


def _as_finite_1d(values: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if len(arr) == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds {int(np.sum(~np.isfinite(arr)))} non-finite value(s)")
    return arr


def loss_threshold_auc(forget_loss: np.ndarray, holdout_loss: np.ndarray) -> float:
    """ROC-AUC of a loss-threshold attack (low loss -> member), forget set as members; 0.5 = indistinguishable."""
    forget = _as_finite_1d(forget_loss, "forget_loss")
    holdout = _as_finite_1d(holdout_loss, "holdout_loss")
    labels = np.concatenate([np.ones(len(forget)), np.zeros(len(holdout))])
    # Negated so that a higher score means "more member-like", which is what ROC-AUC ranks.
    return float(roc_auc_score(labels, -np.concatenate([forget, holdout])))
