"""Per-sample outputs and simple scores of unlearning.audit.metrics."""

import numpy as np
import pytest
import torch

from unlearning.audit.metrics import (
    accuracy,
    average_gap,
    cross_entropy_per_sample,
    loss_threshold_auc,
    predict_logits,
    true_class_prob,
)


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 3))


def test_predict_logits_runs_in_eval_mode_and_restores_train_mode():
    net = _net().train()
    x = torch.randn(10, 4)
    first = predict_logits(net, x)
    second = predict_logits(net, x)
    assert net.training
    torch.testing.assert_close(first, second)  # dropout was off, so two passes agree


def test_predict_logits_keeps_eval_mode_of_an_eval_model():
    net = _net().eval()
    predict_logits(net, torch.randn(3, 4))
    assert not net.training


def test_predict_logits_batches_give_the_single_pass_result_as_cpu_float32():
    net = _net().eval()
    x = torch.randn(10, 4, dtype=torch.float32)
    out = predict_logits(net, x, batch_size=3)
    assert out.dtype == torch.float32 and out.device.type == "cpu" and out.shape == (10, 3)
    with torch.no_grad():
        torch.testing.assert_close(out, net(x))


def test_predict_logits_rejects_empty_input():
    with pytest.raises(ValueError, match="empty"):
        predict_logits(_net(), torch.empty(0, 4))


def test_accuracy_is_in_percent():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 5.0]])
    assert accuracy(logits, torch.tensor([0, 1, 1, 0])) == pytest.approx(50.0)


def test_true_class_prob_is_the_softmax_of_the_label():
    logits = torch.tensor([[0.0, np.log(3.0)], [1.0, 1.0]])
    np.testing.assert_allclose(true_class_prob(logits, torch.tensor([1, 0])), [0.75, 0.5])


def test_cross_entropy_is_minus_log_true_class_prob():
    logits = torch.randn(6, 4)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    np.testing.assert_allclose(cross_entropy_per_sample(logits, y), -np.log(true_class_prob(logits, y)), rtol=1e-6)


def test_labels_outside_the_class_range_are_rejected():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        accuracy(torch.zeros(2, 2), torch.tensor([0, 2]))


def test_average_gap_is_the_mean_absolute_difference_over_the_keys():
    result = {"forget": 90.0, "test": 80.0, "extra": 0.0}
    reference = {"forget": 94.0, "test": 82.0, "extra": 100.0}
    assert average_gap(result, reference, ("forget", "test")) == pytest.approx(3.0)


def test_average_gap_names_missing_keys():
    with pytest.raises(ValueError, match="mis"):
        average_gap({"a": 1.0}, {"a": 1.0, "mis": 2.0}, ("a", "mis"))


def test_loss_threshold_auc_is_one_when_forget_losses_are_all_lower():
    assert loss_threshold_auc(np.array([0.01, 0.02, 0.03]), np.array([1.0, 2.0])) == pytest.approx(1.0)


def test_loss_threshold_auc_is_half_for_identical_losses():
    rng = np.random.default_rng(0)
    losses = rng.exponential(size=2000)
    assert loss_threshold_auc(losses[:1000], losses[1000:]) == pytest.approx(0.5, abs=0.04)


def test_loss_threshold_auc_rejects_non_finite_losses():
    with pytest.raises(ValueError, match="non-finite"):
        loss_threshold_auc(np.array([np.inf, 1.0]), np.array([1.0]))
