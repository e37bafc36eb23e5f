import pytest
import torch
import torch.nn as nn

from unlearning.attack import calibrate_eps, closest_adversarial
from unlearning.specs import AttackConfig


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
