import torch
import torch.nn as nn

from unlearning.loop import MaskedSGD, Part, Schedule, fit
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
