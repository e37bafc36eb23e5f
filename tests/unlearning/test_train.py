import torch

from unlearning.specs import AugmentSpec, TrainConfig
from unlearning.train import train_model

RECIPE = TrainConfig(epochs=2, lr=0.05, batch_size=64, augment=AugmentSpec(crop_padding=1, hflip=True))


def test_same_seed_gives_bit_identical_weights_and_another_seed_does_not(digits, tiny_arch):
    a = train_model(tiny_arch, digits.train, RECIPE).model
    b = train_model(tiny_arch, digits.train, RECIPE).model
    c = train_model(tiny_arch, digits.train, TrainConfig(**{**RECIPE.__dict__, "seed": 1})).model
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert any(not torch.equal(p, q) for p, q in zip(a.state_dict().values(), c.state_dict().values()))


def test_training_reports_what_it_spent(digits, tiny_arch):
    result = train_model(tiny_arch, digits.train, RECIPE)
    assert result.samples_seen == 2 * len(digits.train) and result.seconds > 0
    assert not result.model.training
