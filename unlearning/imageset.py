"""In-memory image sets and whole-batch augmentation.

Datasets of the size this service handles fit in memory, so they are held as one float tensor on the
compute device and augmented a batch at a time with tensor ops, never per-sample PIL transforms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from unlearning.specs import AugmentSpec


@dataclass
class ImageSet:
    x: torch.Tensor  # N, C, H, W float32 in [0, 1]
    y: torch.Tensor  # N int64 class labels
    ids: np.ndarray  # N str sample IDs, stable across runs

    def __post_init__(self) -> None:
        if not (len(self.x) == len(self.y) == len(self.ids)):
            raise ValueError(f"x, y and ids differ in length: {len(self.x)}, {len(self.y)}, {len(self.ids)}")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: np.ndarray | torch.Tensor | list[int]) -> ImageSet:
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
        return ImageSet(self.x[idx.to(self.x.device)], self.y[idx.to(self.y.device)], self.ids[idx.numpy()])

    def to(self, device: torch.device | str) -> ImageSet:
        return ImageSet(self.x.to(device), self.y.to(device), self.ids)

    def positions(self, ids: list[str] | np.ndarray) -> np.ndarray:
        """Positions of the given IDs; raises KeyError naming up to ten that are not in this set."""
        lookup = {sid: i for i, sid in enumerate(self.ids.tolist())}
        missing = [sid for sid in ids if sid not in lookup]
        if missing:
            raise KeyError(f"{len(missing)} unknown sample IDs, e.g. {missing[:10]}")
        return np.fromiter((lookup[sid] for sid in ids), dtype=np.int64, count=len(ids))

    def without(self, ids: list[str] | np.ndarray) -> ImageSet:
        """This set minus the given IDs (IDs not in the set are ignored)."""
        drop = set(np.asarray(ids, dtype=str).tolist())
        keep = np.fromiter((sid not in drop for sid in self.ids.tolist()), dtype=bool, count=len(self))
        return self.subset(np.flatnonzero(keep))


def augment_batch(x: torch.Tensor, spec: AugmentSpec, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop (zero padding) and horizontal flip of a whole batch, independently per sample.

    The random numbers are drawn on `generator`'s device (x's device when there is none): a generator on
    x's device costs no host-to-device copy per batch."""
    if spec.crop_padding == 0 and not spec.hflip:
        return x
    n, _, h, w = x.shape
    rng_device = generator.device if generator is not None else x.device
    if spec.crop_padding > 0:
        p = spec.crop_padding
        padded = torch.nn.functional.pad(x, (p, p, p, p))
        oy = torch.randint(0, 2 * p + 1, (n,), generator=generator, device=rng_device).to(x.device)
        ox = torch.randint(0, 2 * p + 1, (n,), generator=generator, device=rng_device).to(x.device)
        rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # N, 1, H, 1
        cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # N, 1, 1, W
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = padded[batch, chan, rows, cols]  # N, C, H, W
    if spec.hflip:
        flip = torch.rand(n, generator=generator, device=rng_device).to(x.device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x
