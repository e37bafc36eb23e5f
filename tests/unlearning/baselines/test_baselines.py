import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unlearning.audit.metrics import cross_entropy_per_sample, predict_logits
from unlearning.baselines.bs import neighbour_labels
from unlearning.baselines.rl import random_wrong_labels
from unlearning.methods import UNLEARNERS, run_unlearning
from unlearning.specs import AugmentSpec, TrainConfig, UnlearnConfig
from unlearning.unlearn import UnlearnResult

AUG = AugmentSpec(crop_padding=0, hflip=False)


def _split(digits, n_forget=40):
    perm = np.random.default_rng(3).permutation(len(digits.train))
    return digits.train.subset(perm[:n_forget]), digits.train.subset(perm[n_forget:])


@pytest.mark.parametrize("method", sorted(UNLEARNERS))
def test_every_method_shares_one_signature_and_leaves_the_given_model_untouched(method, tiny_model, digits):
    forget, retain = _split(digits)
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    cfg = UnlearnConfig(method=method, epochs=1, batch_size=64, augment=AUG,
                        recipe=TrainConfig(epochs=1, batch_size=64, augment=AUG))
    result = run_unlearning(tiny_model, forget, retain, cfg)
    assert isinstance(result, UnlearnResult) and result.epochs_run == 1
    assert result.model is not tiny_model
    assert any(not torch.equal(before[k], v) for k, v in result.model.state_dict().items())
    assert all(torch.equal(before[k], v) for k, v in tiny_model.state_dict().items())


@pytest.mark.parametrize("method", ["retrain", "ft", "l1_sparse"])
def test_methods_defined_by_the_remaining_data_refuse_to_run_without_it(method):
    with pytest.raises(ValueError, match="needs the remaining data"):
        UnlearnConfig(method=method, retain_access=False, recipe=TrainConfig())


def test_random_labels_are_always_wrong():
    y = torch.arange(10).repeat(50)
    labels = random_wrong_labels(y, 10, torch.Generator().manual_seed(0))
    assert (labels != y).all() and labels.min() >= 0 and labels.max() <= 9
    assert len(set(labels.tolist())) == 10


def test_gradient_ascent_raises_the_loss_on_the_forget_set(tiny_model, digits):
    forget, _ = _split(digits)
    cfg = UnlearnConfig(method="ga", retain_access=False, epochs=3, lr=0.05, step_size=3, batch_size=16, augment=AUG)
    after = run_unlearning(tiny_model, forget, None, cfg).model
    loss = lambda m: cross_entropy_per_sample(predict_logits(m, forget.x), forget.y).mean()  # noqa: E731
    assert loss(after) > loss(tiny_model)


def test_boundary_shrink_labels_are_the_frozen_models_prediction_at_the_fgsm_point(tiny_model, digits):
    forget, _ = _split(digits, n_forget=16)
    labels = neighbour_labels(tiny_model, forget.x, forget.y, bound=0.1)
    x = forget.x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(tiny_model.eval()(x), forget.y), x)
    with torch.no_grad():
        expected = tiny_model((forget.x + 0.1 * grad.sign()).clamp(0, 1)).argmax(1)
    assert torch.equal(labels, expected)


def test_random_labels_are_redrawn_at_every_visit(tiny_model, digits):
    from unlearning.baselines.rl import parts_for

    forget, _ = _split(digits, n_forget=64)
    cfg = UnlearnConfig(method="rl", retain_access=False, augment=AUG)
    (part,) = parts_for(forget, None, cfg, num_classes=10)
    gen = torch.Generator().manual_seed(0)
    first, second = part.relabel(forget.x, forget.y, gen), part.relabel(forget.x, forget.y, gen)
    assert (first != forget.y).all() and (second != forget.y).all()
    assert not torch.equal(first, second)


@pytest.mark.parametrize("method", ["ga", "bs"])
def test_ga_and_bs_run_a_remaining_data_pass_then_an_undiluted_forget_pass(method, tiny_model, digits, monkeypatch):
    import unlearning.loop as loop_module

    forget, retain = _split(digits, n_forget=16)
    passes: list[list[int]] = []  # the sizes of the parts each pass of an epoch draws from
    real_draw = loop_module._draw_epoch

    def spying_draw(parts, generator, device):
        passes.append([len(p.y) for p in parts])
        return real_draw(parts, generator, device)

    monkeypatch.setattr(loop_module, "_draw_epoch", spying_draw)
    cfg = UnlearnConfig(method=method, epochs=2, batch_size=16, augment=AUG)
    run_unlearning(tiny_model, forget, retain, cfg)
    batches = ["F" if sizes == [len(forget)] else "R" if sizes == [len(retain)] else "mixed" for sizes in passes]
    assert batches == ["R", "F", "R", "F"]


def test_boundary_shrink_labels_come_from_the_model_as_it_was_at_the_epoch_start(tiny_model, digits, monkeypatch):
    import unlearning.baselines.bs as bs_module

    forget, _ = _split(digits, n_forget=16)
    seen_weights: list[torch.Tensor] = []
    real = bs_module.neighbour_labels

    def spy(model, x, y, bound, batch_size=512):
        seen_weights.append(next(model.parameters()).detach().clone())
        return real(model, x, y, bound, batch_size)

    monkeypatch.setattr(bs_module, "neighbour_labels", spy)
    cfg = UnlearnConfig(method="bs", retain_access=False, epochs=3, batch_size=8, lr=0.05, augment=AUG)
    result = run_unlearning(tiny_model, forget, None, cfg)
    assert len(seen_weights) == 3 * 2  # per batch: 2 batches an epoch
    # one frozen copy within an epoch, refreshed between epochs
    assert torch.equal(seen_weights[0], seen_weights[1]) and torch.equal(seen_weights[2], seen_weights[3])
    assert not torch.equal(seen_weights[1], seen_weights[2])
    assert torch.equal(seen_weights[0], next(tiny_model.parameters()))
    assert result.attack_passes == 3 * 16
