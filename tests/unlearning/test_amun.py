import copy
import dataclasses

import numpy as np
import pytest
import torch

from unlearning import amun
from unlearning.audit.metrics import predict_logits, true_class_prob
from unlearning.methods import run_unlearning
from unlearning.specs import AttackConfig, AugmentSpec, UnlearnConfig
from unlearning.unlearn import saliency_mask

AUG = AugmentSpec(crop_padding=1, hflip=False)


def _split(digits, n_forget=60):
    perm = np.random.default_rng(0).permutation(len(digits.train))
    return digits.train.subset(perm[:n_forget]), digits.train.subset(perm[n_forget:])


def test_amun_salun_leaves_masked_weights_bit_identical(tiny_model, digits):
    forget, retain = _split(digits)
    cfg = UnlearnConfig(method="amun_salun", retain_access=False, epochs=2, lr=0.05, batch_size=32,
                        salun_ratio=0.3, augment=AUG, attack=AttackConfig(eps_init=0.2, steps=10))
    masks = saliency_mask(copy.deepcopy(tiny_model), forget, 0.3)
    result = run_unlearning(tiny_model, forget, None, cfg)
    moved = 0
    for (name, p0), p1, m in zip(tiny_model.named_parameters(), result.model.parameters(), masks.values()):
        frozen = m == 0
        assert torch.equal(p0[frozen], p1[frozen]), f"{name}: a masked weight moved"
        moved += int((p0[~frozen] != p1[~frozen]).sum())
    assert moved > 0
    share = sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())
    assert share == pytest.approx(0.3, abs=0.01)


def test_amun_lowers_forget_confidence_and_keeps_the_original_untouched(tiny_model, digits):
    forget, retain = _split(digits)
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    cfg = UnlearnConfig(method="amun", retain_access=True, epochs=3, lr=0.05, batch_size=64, augment=AUG,
                        attack=AttackConfig(eps_init=0.2, steps=10))
    result = run_unlearning(tiny_model, forget, retain, cfg)
    conf = lambda m: true_class_prob(predict_logits(m, forget.x), forget.y).mean()  # noqa: E731
    assert conf(result.model) < conf(tiny_model)
    assert all(torch.equal(before[k], v) for k, v in tiny_model.state_dict().items())
    assert result.attack_passes > 0 and result.adversarial["samples"] == len(forget)
    assert set(result.seconds) == {"attack", "fine-tune"}


def test_given_adversarial_set_must_match_the_forget_set(tiny_model, digits):
    forget, _ = _split(digits)
    adv = amun.closest_adversarial(tiny_model, forget.x[:10], forget.y[:10], AttackConfig(eps_init=0.2, steps=5))
    cfg = UnlearnConfig(method="amun", retain_access=False, epochs=1)
    with pytest.raises(ValueError, match="adversarial set has 10 samples"):
        run_unlearning(tiny_model, forget, None, cfg, adversarial=adv)


def test_subsampled_mode_trains_on_a_multiple_of_the_forget_set_per_epoch(tiny_model, digits):
    forget, retain = _split(digits, n_forget=40)
    cfg = UnlearnConfig(method="amun", retain_access=True, retain_multiple=2.0, epochs=2, batch_size=32,
                        augment=AUG, attack=AttackConfig(eps_init=0.2, steps=10))
    result = run_unlearning(tiny_model, forget, retain, cfg)
    n_adv = result.adversarial["samples"] - result.adversarial["never_flipped"]
    assert result.samples_seen == 2 * (40 + n_adv + 80)


def test_stopping_rule_stops_early_and_records_its_trace(tiny_model, digits):
    from unlearning.specs import StopConfig

    forget, retain = _split(digits)
    cfg = UnlearnConfig(method="amun", retain_access=True, epochs=6, lr=0.05, batch_size=64, augment=AUG,
                        attack=AttackConfig(eps_init=0.2, steps=10), stop=StopConfig(tolerance=0.45, min_epochs=1, checks_per_epoch=1, max_acc_drop=None))
    result = run_unlearning(tiny_model, forget, retain, cfg, holdout=digits.test)
    assert result.stopped_early and result.epochs_run == 1 and len(result.stop_trace) == 1
    assert not result.guard_tripped
    with pytest.raises(ValueError, match="held-out"):
        run_unlearning(tiny_model, forget, retain, cfg)


def test_subsampled_mode_draws_at_least_retain_min_remaining_samples_for_a_small_request(tiny_model, digits):
    forget, retain = _split(digits, n_forget=5)
    cfg = UnlearnConfig(method="amun", retain_access=True, retain_multiple=2.0, retain_min=64, epochs=1,
                        batch_size=32, augment=AUG, attack=AttackConfig(eps_init=0.2, steps=10))
    result = run_unlearning(tiny_model, forget, retain, cfg)
    assert result.samples_seen == 5 + result.adversarial["usable"] + 64  # not 2 x 5 = 10


def test_retain_min_needs_the_subsampled_mode():
    with pytest.raises(ValueError, match="retain_min is the floor of the subsampled mode"):
        UnlearnConfig(retain_min=64)


def test_without_the_forget_set_in_the_mix_amun_trains_on_the_remaining_data_and_d_a_only(tiny_model, digits):
    forget, retain = _split(digits, n_forget=40)
    base = UnlearnConfig(method="amun", retain_access=True, epochs=2, batch_size=32, augment=AUG,
                         attack=AttackConfig(eps_init=0.2, steps=10))
    with_f = run_unlearning(tiny_model, forget, retain, base)
    without = run_unlearning(tiny_model, forget, retain, dataclasses.replace(base, forget_in_mix=False))
    n_adv = without.adversarial["usable"]
    assert with_f.samples_seen == 2 * (40 + n_adv + len(retain))
    assert without.samples_seen == 2 * (n_adv + len(retain))
    # never trained on again, the forget set loses more of its confidence than with its labels in the mix
    conf = lambda m: true_class_prob(predict_logits(m, forget.x), forget.y).mean()  # noqa: E731
    assert conf(without.model) < conf(with_f.model)
