"""Tiny real data and a tiny trained model, shared by the core library's tests (seconds on 2 CPU cores)."""

import pytest
import torch

from unlearning.data import Dataset, load_dataset, stratified_subset
from unlearning.specs import ArchSpec, AugmentSpec, DatasetSpec, TrainConfig
from unlearning.train import train_model

# no augmentation and many passes over few samples: the tiny model memorises its training set, so
# there is something to unlearn (forget-set confidence well above test confidence)
TINY_RECIPE = TrainConfig(epochs=40, lr=0.05, batch_size=32, augment=AugmentSpec(crop_padding=0, hflip=False))


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits with a 300-sample training split (the rest of its train split is dropped)."""
    full = load_dataset(DatasetSpec("digits", ""))
    return Dataset(stratified_subset(full.train, 300, seed=0), full.test, full.classes, full.input_shape)


@pytest.fixture(scope="session")
def tiny_arch():
    return ArchSpec("small_cnn", num_classes=10, in_channels=1, image_size=8, width=8)


@pytest.fixture(scope="session")
def tiny_model(digits, tiny_arch):
    """A small CNN trained briefly on scikit-learn's digits; tests must copy it before changing it."""
    torch.manual_seed(0)
    return train_model(tiny_arch, digits.train, TINY_RECIPE).model
