import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from unlearning.attack import calibrate_eps, closest_adversarial, starting_radius
from unlearning.specs import AttackConfig, SpecError, UnlearnConfig, from_dict, to_dict


def test_every_sample_gets_a_misclassified_point_within_its_reported_radius(tiny_model, digits):
    x, y = digits.train.x[:64], digits.train.y[:64]
    adv = closest_adversarial(tiny_model, x, y, AttackConfig(eps_init=0.1))
    assert adv.flipped.all()
    with torch.no_grad():
        pred = tiny_model.eval()(adv.x).argmax(1)
    assert torch.equal(pred, adv.y)
    assert (adv.y != y).all()
    delta = (adv.x - x).flatten(1).norm(dim=1)
    assert torch.allclose(delta, adv.delta_norm, atol=1e-6)
    assert (delta <= adv.eps + 1e-5).all()
    assert adv.x.dtype == torch.float32 and adv.x.min() >= 0 and adv.x.max() <= 1


class _Line(nn.Module):
    """Two classes split by a hyperplane at distance `d` from the origin along a unit direction u."""

    def __init__(self, u: torch.Tensor, d: float) -> None:
        super().__init__()
        self.u = nn.Parameter(u.flatten(), requires_grad=False)
        self.d = d

    def forward(self, x):
        s = x.flatten(1) @ self.u - self.d
        return torch.stack([torch.zeros_like(s), s], dim=1)  # class 1 once past the hyperplane


def _pgd_line(dim: int = 16, d: float = 0.5):
    u = torch.ones(dim) / dim**0.5
    x0 = torch.full((1, 1, 4, 4), 0.3)
    start = float(x0.flatten() @ u)
    return _Line(u, start + d), x0, torch.zeros(1, dtype=torch.long)


def test_radius_doubling_continues_from_the_current_iterate():
    # The gradient direction is constant, so each step moves eps/10 along u. With 2 steps per radius,
    # continuing from the iterate reaches 0.2*eps0*(2^(k+1)-1) after radius k; restarting from x would
    # only reach 0.2*eps0*2^k. The first misclassified iterate tells which one ran.
    model, x0, y = _pgd_line(d=0.5)
    eps0 = 0.05
    adv = closest_adversarial(model, x0, y, AttackConfig(eps_init=eps0, steps=2, max_doublings=10))
    positions, pos = [], 0.0
    for k in range(11):
        for _ in range(2):
            pos += eps0 * 2**k / 10
            positions.append((pos, eps0 * 2**k))
    expected_norm, expected_eps = next((p, e) for p, e in positions if p > 0.5 + 1e-9)
    assert adv.flipped.item()
    assert adv.delta_norm.item() == pytest.approx(expected_norm, rel=1e-4)
    assert adv.eps.item() == pytest.approx(expected_eps)


def test_already_misclassified_sample_is_its_own_adversarial_example():
    model, x0, y = _pgd_line(d=-0.1)  # x0 already lies past the hyperplane: class 1, true label 0
    adv = closest_adversarial(model, x0, y, AttackConfig(eps_init=0.05))
    assert adv.flipped.item() and adv.y.item() == 1
    assert torch.equal(adv.x, x0) and adv.eps.item() == 0.0


def test_samples_that_never_flip_within_the_cap_are_reported_not_looped_on():
    model, x0, y = _pgd_line(d=100.0)  # unreachable inside [0, 1]^16
    adv = closest_adversarial(model, x0, y, AttackConfig(eps_init=0.01, steps=3, max_doublings=4))
    assert not adv.flipped.item()
    assert adv.summary()["never_flipped"] == 1
    assert adv.eps.item() == pytest.approx(0.01 * 2**4)  # the largest radius tried
    assert adv.usable()[0].shape[0] == 0  # D_A only holds real misclassifications
    assert adv.passes == 3 * 5 + 1  # every step of every radius, then the final check


def test_calibrated_eps_init_lets_the_quantile_of_samples_flip_within_it(tiny_model, digits):
    cfg = AttackConfig(steps=10, calibration_samples=20, calibration_eps=0.05, calibration_quantile=0.95)
    x, y = digits.train.x[:100], digits.train.y[:100]
    eps_init, passes = calibrate_eps(tiny_model, x, y, cfg, generator=torch.Generator().manual_seed(0))
    assert passes > 0
    ladder = [0.05 * 2**k for k in range(cfg.max_doublings + 1)]
    assert any(eps_init == pytest.approx(e) for e in ladder)
    # run the same search on the same samples and check the rule it promised
    pick = torch.randperm(100, generator=torch.Generator().manual_seed(0))[:20]
    adv = closest_adversarial(tiny_model, x[pick], y[pick], AttackConfig(steps=10, eps_init=0.05))
    needed = adv.eps[adv.flipped & (adv.eps > 0)]
    assert (needed <= eps_init + 1e-6).float().mean() >= 0.95


def test_attack_leaves_the_model_mode_and_weights_unchanged(tiny_model, digits):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    tiny_model.train()
    closest_adversarial(tiny_model, digits.train.x[:32], digits.train.y[:32], AttackConfig(eps_init=0.1))
    assert tiny_model.training
    tiny_model.eval()
    assert all(torch.equal(before[k], v) for k, v in tiny_model.state_dict().items())


# ---- the rule for the starting radius, already-misclassified samples, the summary ----

def _calibration_radii(model, x, y, cfg, seed):
    """The radii the calibration search needs on the samples calibrate_eps picks with `seed`."""
    pick = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[: cfg.calibration_samples]
    adv = closest_adversarial(model, x[pick], y[pick], AttackConfig(steps=cfg.steps, eps_init=cfg.calibration_eps))
    return adv.eps[adv.flipped & (adv.eps > 0)].numpy()


def test_median_rule_takes_the_median_radius_no_larger_than_the_quantile_rule(tiny_model, digits):
    x, y = digits.train.x[:100], digits.train.y[:100]
    base = dict(steps=10, calibration_samples=20, calibration_eps=0.05)
    quantile, _ = calibrate_eps(tiny_model, x, y, AttackConfig(**base, eps_rule="quantile"),
                                generator=torch.Generator().manual_seed(0))
    median, passes = calibrate_eps(tiny_model, x, y, AttackConfig(**base, eps_rule="median"),
                                   generator=torch.Generator().manual_seed(0))
    needed = _calibration_radii(tiny_model, x, y, AttackConfig(**base), seed=0)
    assert passes > 0
    assert median == pytest.approx(float(np.quantile(needed, 0.5, method="higher")))
    assert quantile == pytest.approx(float(np.quantile(needed, 0.95, method="higher")))
    assert median <= quantile


def test_with_the_median_rule_the_doubling_acts(tiny_model, digits):
    x, y = digits.train.x[:40], digits.train.y[:40]
    cfg = AttackConfig(steps=10, calibration_samples=20, calibration_eps=0.05, eps_rule="median")
    adv = closest_adversarial(tiny_model, x, y, cfg, generator=torch.Generator().manual_seed(0))
    summary = adv.summary()
    assert summary["eps_calibrated"] and summary["eps_rule"] == "median"
    doubled = adv.flipped & (adv.eps > adv.eps_init * 1.5)
    assert doubled.any()  # some samples needed a larger radius than the first one
    assert summary["first_radius_share"] < 1.0
    found = adv.flipped & ~adv.misclassified
    assert summary["first_radius_share"] == pytest.approx(
        float((found & torch.isclose(adv.eps, torch.tensor(adv.eps_init))).sum()) / float((~adv.misclassified).sum()))
    assert summary["delta_norm_mean"] == pytest.approx(float(adv.delta_norm[found].mean()), rel=1e-5)
    assert summary["eps_median"] == pytest.approx(float(np.median(adv.eps[found].numpy())), rel=1e-5)
    assert summary["eps_q05"] <= summary["eps_q25"] <= summary["eps_median"] <= summary["eps_q75"] <= summary["eps_q95"]


def test_fixed_rule_starts_at_the_authors_radius_without_calibrating(tiny_model, digits, monkeypatch):
    import unlearning.attack as attack

    def no_calibration(*args, **kwargs):
        raise AssertionError("the fixed rule must not calibrate")

    monkeypatch.setattr(attack, "calibrate_eps", no_calibration)
    x, y = digits.train.x[:4], digits.train.y[:4]
    cfg = AttackConfig(steps=3, eps_rule="fixed")
    assert cfg.eps_init == 0.04
    adv = closest_adversarial(tiny_model, x, y, cfg)
    plain = closest_adversarial(tiny_model, x, y, AttackConfig(steps=3, eps_init=0.04))
    assert adv.eps_init == pytest.approx(0.04) and not adv.summary()["eps_calibrated"]
    assert adv.passes == plain.passes  # the search only, no calibration passes
    given = closest_adversarial(tiny_model, x, y, AttackConfig(steps=3, eps_rule="fixed", eps_init=0.1))
    assert given.eps_init == pytest.approx(0.1)
    monkeypatch.undo()
    assert calibrate_eps(tiny_model, x, y, cfg) == (0.04, 0)  # callers that always calibrate get it too


def _calibrations(monkeypatch) -> list[float]:
    """Counts calibrate_eps's calls, made through the module as starting_radius makes them."""
    import unlearning.attack as attack

    calls, real = [], attack.calibrate_eps

    def counting(*args, **kwargs):
        result = real(*args, **kwargs)
        calls.append(result[0])
        return result

    monkeypatch.setattr(attack, "calibrate_eps", counting)
    return calls


def test_the_starting_radius_of_the_config_wins_over_an_inherited_one(tiny_model, digits, monkeypatch):
    calls = _calibrations(monkeypatch)
    cfg = starting_radius(AttackConfig(eps_init=0.3), 0.7, tiny_model, digits.train.x[:20], digits.train.y[:20], seed=0)
    assert cfg.eps_init == 0.3 and calls == []


def test_without_one_in_the_config_the_inherited_starting_radius_is_used(tiny_model, digits, monkeypatch):
    calls, phases = _calibrations(monkeypatch), []
    cfg = starting_radius(AttackConfig(steps=5), 0.7, tiny_model, digits.train.x[:20], digits.train.y[:20], seed=0,
                          progress=lambda phase, done, total: phases.append(phase))
    assert cfg.eps_init == 0.7 and calls == [] and phases == []


def test_with_neither_the_starting_radius_is_calibrated_once_with_the_callers_seed(tiny_model, digits, monkeypatch):
    calls, phases = _calibrations(monkeypatch), []
    x, y = digits.train.x[:100], digits.train.y[:100]
    attack = AttackConfig(steps=10, calibration_samples=20, calibration_eps=0.05)
    cfg = starting_radius(attack, None, tiny_model, x, y, seed=3,
                          progress=lambda phase, done, total: phases.append((phase, done, total)))
    expected, _ = calibrate_eps(tiny_model, x, y, attack, generator=torch.Generator().manual_seed(3))
    assert calls == [expected] and cfg.eps_init == expected
    assert phases == [("calibrate", 0, 1), ("calibrate", 1, 1)]
    assert cfg == AttackConfig(steps=10, calibration_samples=20, calibration_eps=0.05, eps_init=expected)


def _one_clean_one_misclassified():
    """Two samples for _Line: the first needs the attack, the second already lies past the hyperplane."""
    model, x0, _ = _pgd_line(d=0.5)
    far = torch.full_like(x0, 0.3 + 0.6 / 4)  # 0.6 past the start along u (u = ones / 4)
    return model, torch.cat([x0, far]), torch.zeros(2, dtype=torch.long)


def test_already_misclassified_samples_join_d_a_by_default():
    model, x, y = _one_clean_one_misclassified()
    adv = closest_adversarial(model, x, y, AttackConfig(eps_init=0.05, steps=5))
    x_a, y_a = adv.usable()
    assert adv.misclassified.tolist() == [False, True]
    assert len(y_a) == 2 and torch.equal(x_a[1], x[1]) and y_a[1].item() == 1
    assert adv.summary()["misclassified"] == 1 and adv.summary()["misclassified_excluded"] == 0


def test_excluding_misclassified_samples_keeps_them_out_of_d_a():
    model, x, y = _one_clean_one_misclassified()
    adv = closest_adversarial(model, x, y, AttackConfig(eps_init=0.05, steps=5, include_misclassified=False))
    x_a, y_a = adv.usable()
    assert len(y_a) == 1 and not torch.equal(x_a[0], x[0]) and y_a[0].item() == 1  # only the attacked one
    summary = adv.summary()
    assert summary["misclassified_excluded"] == 1 and summary["usable"] == 1
    json.dumps(summary, allow_nan=False)


def test_summary_is_strict_json_when_nothing_flipped():
    model, x0, y = _pgd_line(d=100.0)
    summary = closest_adversarial(model, x0, y, AttackConfig(eps_init=0.01, steps=2, max_doublings=1)).summary()
    assert summary["eps_median"] is None and summary["first_radius_share"] == 0.0
    json.dumps(summary, allow_nan=False)


def test_attack_configs_stored_before_the_eps_rule_still_load():
    old = {"steps": 10, "eps_init": 0.2, "max_doublings": 10, "calibration_samples": 100,
           "calibration_eps": 0.01, "calibration_quantile": 0.95, "batch_size": 1024}
    cfg = from_dict(AttackConfig, old)
    assert cfg.eps_init == 0.2 and cfg.eps_rule == "quantile" and cfg.include_misclassified
    assert from_dict(AttackConfig, {**old, "eps_init": None}).eps_init is None
    unlearn = from_dict(UnlearnConfig, {"method": "amun", "attack": {"eps_init": 0.2, "steps": 10}})
    assert unlearn.attack == AttackConfig(eps_init=0.2, steps=10)
    fixed = AttackConfig(eps_rule="fixed")
    assert from_dict(AttackConfig, to_dict(fixed)) == fixed


def test_unknown_eps_rule_is_rejected_with_the_choices():
    with pytest.raises(SpecError, match="eps_rule 'mean' is not one of"):
        AttackConfig(eps_rule="mean")
