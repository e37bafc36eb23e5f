import pytest
import torch
import torch.nn as nn

from unlearning.loop import MaskedSGD, Part, Schedule, TrainingDiverged, fit
from unlearning.specs import AugmentSpec


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


def test_masked_sgd_keeps_frozen_weights_bit_identical_under_momentum_and_weight_decay():
    net = _net()
    masks = {p: (torch.rand_like(p) < 0.5).float() for p in net.parameters()}
    before = [p.detach().clone() for p in net.parameters()]
    opt = MaskedSGD(net.parameters(), lr=0.5, momentum=0.9, weight_decay=0.1, masks=masks)
    x, y = torch.rand(32, 1, 4, 4), torch.randint(0, 3, (32,))
    for _ in range(5):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    moved = 0
    for p, p0 in zip(net.parameters(), before):
        frozen = masks[p] == 0
        assert torch.equal(p[frozen], p0[frozen])
        moved += int((p[~frozen] != p0[~frozen]).sum())
    assert moved > 0


def test_masked_sgd_without_masks_matches_pytorch_sgd():
    a, b = _net(), _net()
    opt_a = MaskedSGD(a.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x, y = torch.rand(16, 1, 4, 4), torch.randint(0, 3, (16,))
    for _ in range(4):
        for net, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6)


def test_subsampled_part_draws_its_per_epoch_size_and_full_parts_are_used_whole():
    net = _net()
    big = Part(torch.rand(1000, 1, 4, 4), torch.randint(0, 3, (1000,)), per_epoch=30)
    small = Part(torch.rand(20, 1, 4, 4), torch.randint(0, 3, (20,)), augment=False)
    stats = fit(net, [small, big], epochs=3, batch_size=16, schedule=Schedule(0.01), momentum=0.9,
                weight_decay=0.0, augment=AugmentSpec(), generator=torch.Generator().manual_seed(0))
    assert stats.samples_seen == 3 * (20 + 30)
    assert stats.epochs_run == 3 and not net.training


def test_step_schedule_decays_every_step_size_epochs():
    s = Schedule(0.1, "step", step_size=2, gamma=0.1)
    assert [round(s.lr_at(e, 0.0, 6), 6) for e in range(6)] == [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]


def test_masked_sgd_follows_pytorch_sgd_bit_for_bit_on_unmasked_weights_and_freezes_masked_ones():
    # the same gradients fed to both optimisers: element by element the foreach update is SGD's own
    a, b = _net(), _net()
    masks = {p: (torch.rand_like(p) < 0.5).float() for p in a.parameters()}
    start = [p.detach().clone() for p in a.parameters()]
    opt_a = MaskedSGD(a.parameters(), lr=0.3, momentum=0.9, weight_decay=0.01, masks=masks)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.3, momentum=0.9, weight_decay=0.01, foreach=False)
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        for pa, pb in zip(a.parameters(), b.parameters()):
            g = torch.randn(pa.shape, generator=gen)
            pa.grad, pb.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
    for pa, pb, p0 in zip(a.parameters(), b.parameters(), start):
        free = masks[pa] == 1
        assert torch.equal(pa[free], pb[free])
        assert torch.equal(pa[~free], p0[~free])


def _count_host_syncs(monkeypatch) -> list[str]:
    """Record every call that makes the host wait for a tensor's value."""
    calls: list[str] = []
    for name in ("item", "__bool__", "__float__", "__int__", "tolist"):
        original = getattr(torch.Tensor, name)

        def spy(self, *args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, spy)
    return calls


def test_fit_waits_for_the_device_only_at_checks_not_at_every_step(monkeypatch):
    net = _net()
    part = Part(torch.rand(640, 1, 4, 4), torch.randint(0, 3, (640,)))
    calls = _count_host_syncs(monkeypatch)
    stats = fit(net, [part], epochs=2, batch_size=8, schedule=Schedule(0.01), momentum=0.9, weight_decay=5e-4,
                augment=AugmentSpec(crop_padding=1, hflip=True), generator=torch.Generator().manual_seed(0))
    assert stats.steps == 160
    # the finite-loss check every FINITE_CHECK_STEPS steps and once per epoch: 3 + 2, and the seed of the
    # device generator is not drawn on a CPU
    assert len(calls) <= 6, calls


def test_a_diverging_loss_is_reported_at_the_next_check():
    net = _net()
    # gradient ascent at a huge rate: the logits overflow within a few steps
    part = Part(torch.rand(64, 1, 4, 4), torch.randint(0, 3, (64,)), sign=-1.0, augment=False)
    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        fit(net, [part], epochs=20, batch_size=8, schedule=Schedule(1e6, "constant"), momentum=0.9,
            weight_decay=0.0, augment=AugmentSpec(), generator=torch.Generator().manual_seed(0))


def test_stages_run_one_after_another_within_each_epoch_and_relabel_sees_only_its_part():
    net = _net()
    seen: list[str] = []

    def spy(tag):
        def relabel(x, y, gen):
            assert bool((y == (0 if tag == "R" else 1)).all())  # a batch of this part only
            seen.append(tag)
            return y
        return relabel

    retain = Part(torch.rand(32, 1, 4, 4), torch.zeros(32, dtype=torch.long), relabel=spy("R"), stage=0)
    forget = Part(torch.rand(16, 1, 4, 4), torch.ones(16, dtype=torch.long), relabel=spy("F"), stage=1)
    fit(net, [forget, retain], epochs=2, batch_size=8, schedule=Schedule(0.01), momentum=0.0,
        weight_decay=0.0, augment=AugmentSpec(), generator=torch.Generator().manual_seed(0))
    assert "".join(seen) == "RRRRFF" * 2


def test_relabel_in_a_mixed_stage_changes_only_its_own_parts_labels():
    labels: list[torch.Tensor] = []

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = _net()

        def forward(self, x):
            return self.net(x)

    net = Spy()
    flipped = Part(torch.rand(16, 1, 4, 4), torch.zeros(16, dtype=torch.long),
                   relabel=lambda x, y, g: torch.full_like(y, 2))
    plain = Part(torch.rand(16, 1, 4, 4), torch.ones(16, dtype=torch.long))
    original_ce = nn.functional.cross_entropy

    def recording_ce(logits, y, **kwargs):
        labels.append(y.clone())
        return original_ce(logits, y, **kwargs)

    import unlearning.loop as loop_module
    loop_module.F.cross_entropy, saved = recording_ce, loop_module.F.cross_entropy
    try:
        fit(net, [flipped, plain], epochs=1, batch_size=32, schedule=Schedule(0.01), momentum=0.0,
            weight_decay=0.0, augment=AugmentSpec(), generator=torch.Generator().manual_seed(0))
    finally:
        loop_module.F.cross_entropy = saved
    (y,) = labels
    assert sorted(y.tolist()) == [1] * 16 + [2] * 16


def test_on_check_runs_evenly_within_epochs_and_can_stop_training_there():
    net = _net()
    part = Part(torch.rand(80, 1, 4, 4), torch.randint(0, 3, (80,)))
    points: list[tuple[int, float]] = []

    def check(epoch, frac, model):
        points.append((epoch, frac))
        return len(points) == 3

    stats = fit(net, [part], epochs=5, batch_size=8, schedule=Schedule(0.01), momentum=0.9, weight_decay=0.0,
                augment=AugmentSpec(), generator=torch.Generator().manual_seed(0), on_check=check,
                checks_per_epoch=2)
    assert points == [(0, 0.5), (0, 1.0), (1, 0.5)]
    assert stats.epochs_run == 2 and stats.steps == 15 and not net.training
