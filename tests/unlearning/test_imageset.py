import numpy as np
import pytest
import torch

from unlearning.imageset import ImageSet, augment_batch
from unlearning.specs import AugmentSpec


def _set(n=6):
    return ImageSet(torch.rand(n, 1, 5, 5), torch.arange(n) % 3, np.array([f"s{i}" for i in range(n)]))


def test_without_drops_exactly_the_given_ids_and_positions_name_unknown_ones():
    s = _set()
    rest = s.without(["s1", "s4", "not-there"])
    assert rest.ids.tolist() == ["s0", "s2", "s3", "s5"]
    assert s.positions(["s5", "s0"]).tolist() == [5, 0]
    with pytest.raises(KeyError, match="unknown sample IDs"):
        s.positions(["s0", "nope"])


def test_crop_shifts_content_within_the_padding_and_keeps_shape():
    x = torch.zeros(64, 1, 5, 5)
    x[:, :, 2, 2] = 1.0  # one bright pixel in the middle
    out = augment_batch(x, AugmentSpec(crop_padding=1, hflip=False), torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert torch.all(out.sum(dim=(1, 2, 3)) == 1.0)  # never cropped away with padding 1
    rows = out[:, 0].amax(dim=2).argmax(dim=1)
    assert set(rows.tolist()) == {1, 2, 3}


def test_flip_mirrors_about_half_the_batch():
    x = torch.arange(5.0).view(1, 1, 1, 5).repeat(400, 1, 1, 1)
    out = augment_batch(x, AugmentSpec(crop_padding=0, hflip=True), torch.Generator().manual_seed(0))
    flipped = (out[:, 0, 0, 0] == 4.0).float().mean()
    assert 0.4 < flipped < 0.6
