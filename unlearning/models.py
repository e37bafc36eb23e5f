"""Architectures rebuilt from a JSON-able ArchSpec, and checkpoints that carry their spec and config.

A checkpoint is one safetensors file: the weights, plus the ArchSpec and the producing config as JSON in
its metadata, so a file alone is enough to rebuild the model and to know how it was made.
"""

from __future__ import annotations

import io
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from unlearning.specs import ArchSpec, from_dict, to_dict


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not fit the declared architecture."""


# ---- architectures ----

class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18Cifar(nn.Module):
    """ResNet-18 as used for CIFAR-10 in the paper: 3x3 stem, stride 1, no max-pool."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 64) -> None:
        super().__init__()
        w = width
        self.conv1 = nn.Conv2d(in_channels, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        stages, c_in = [], w
        for i, c_out in enumerate((w, 2 * w, 4 * w, 8 * w)):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)))
            c_in = c_out
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.linear = nn.Linear(8 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))  # N, w, H, W
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))  # N, 8w, H/8, W/8
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)  # N, 8w
        return self.linear(out)


class SmallCNN(nn.Module):
    """Three conv blocks (w, 2w, 4w channels, each halving the size) and a wide hidden layer.

    The fully connected layer over the spatial map gives the net the capacity to memorise a few
    thousand images under augmentation, at a fraction of ResNet-18's cost on a CPU.
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int, width: int = 16, hidden: int = 512):
        super().__init__()
        blocks, c_in = [], in_channels
        for c_out in (width, 2 * width, 4 * width):
            blocks += [nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        side = image_size // 8
        if side < 1:
            raise ValueError(f"small_cnn needs image_size >= 8, got {image_size}")
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(c_in * side * side, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))  # N, num_classes


class _GreyToRGB(nn.Module):
    """Lets a torchvision model built for 3 channels take 1-channel images without new weights."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.expand(-1, 3, -1, -1))


def build_model(spec: ArchSpec) -> nn.Module:
    """A freshly initialised model for the spec (seed the global RNG first for reproducible weights)."""
    if spec.name == "resnet18_cifar":
        model: nn.Module = ResNet18Cifar(spec.in_channels, spec.num_classes, spec.width)
    elif spec.name == "small_cnn":
        model = SmallCNN(spec.in_channels, spec.num_classes, spec.image_size, spec.width)
    else:
        import torchvision

        try:
            net = torchvision.models.get_model(spec.torchvision_name, weights=None, num_classes=spec.num_classes)
        except ValueError as exc:
            raise ValueError(f"unknown torchvision model {spec.torchvision_name!r}: {exc}") from None
        if spec.in_channels == 1:
            net = _GreyToRGB(net)
        elif spec.in_channels != 3:
            raise ValueError(f"torchvision models take 1 or 3 input channels, got {spec.in_channels}")
        model = net
    model.spec = spec  # the spec travels with the module so any method can rebuild or save it
    return model


def spec_of(model: nn.Module) -> ArchSpec:
    spec = getattr(model, "spec", None)
    if not isinstance(spec, ArchSpec):
        raise ValueError("model was not made by build_model: it carries no ArchSpec")
    return spec


# ---- weights and checkpoints ----

def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load exactly the declared architecture's tensors: no missing, no extra, no shape change."""
    check_state_fits(model, state)
    model.load_state_dict(state, strict=True)


def check_state_fits(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """CheckpointError unless `state` has exactly the model's tensor names and shapes. Only names and shapes
    are read, so the model may live on the meta device (an architecture sized without allocating it)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = [f"{k}: {tuple(state[k].shape)} != {tuple(own[k].shape)}" for k in own if k in state
              and tuple(state[k].shape) != tuple(own[k].shape)]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensors (e.g. {missing[:3]})")
    if extra:
        problems.append(f"unexpected {len(extra)} tensors (e.g. {extra[:3]})")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches (e.g. {shapes[:3]})")
    if problems:
        raise CheckpointError("weights do not fit the declared architecture: " + "; ".join(problems))


def read_weights(data: bytes) -> dict[str, torch.Tensor]:
    """Weights from uploaded bytes: safetensors, or a PyTorch state dict that loads with weights_only=True."""
    if data[:1] == b"{" or _looks_like_safetensors(data):
        try:
            return st_load(data)
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(f"not a readable safetensors file: {exc}") from None
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsafe pickle"
        raise CheckpointError(
            f"the file needs weights_only=False to load, which could run arbitrary code; refused ({first})"
        ) from None
    except Exception as exc:
        raise CheckpointError(f"neither safetensors nor a PyTorch state dict: {exc}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items()):
        raise CheckpointError("the file holds no state dict (a mapping of names to tensors)")
    return obj


def _looks_like_safetensors(data: bytes) -> bool:
    # safetensors: an 8-byte little-endian header length followed by a JSON header starting with '{'
    if len(data) < 9:
        return False
    n = int.from_bytes(data[:8], "little")
    return 0 < n <= len(data) - 8 and data[8:9] == b"{"


@dataclass
class Checkpoint:
    model: nn.Module
    spec: ArchSpec
    config: dict[str, Any]  # the config that produced these weights (training or unlearning)
    extra: dict[str, Any]  # anything else the producer recorded (metrics, lineage)


def checkpoint_bytes(model: nn.Module, config: Any = None, extra: dict[str, Any] | None = None) -> bytes:
    """The model as safetensors bytes with its ArchSpec and config in the metadata."""
    cfg = to_dict(config) if hasattr(config, "__dataclass_fields__") else (config or {})
    meta = {
        "arch": json.dumps(to_dict(spec_of(model)), sort_keys=True),
        "config": json.dumps(cfg, sort_keys=True),
        "extra": json.dumps(extra or {}, sort_keys=True),
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return st_save(state, metadata=meta)


def save_checkpoint(path: str | Path, model: nn.Module, config: Any = None, extra: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(checkpoint_bytes(model, config, extra))
    tmp.replace(path)  # atomic: readers never see a half-written file
    return path


def load_checkpoint(source: str | Path | bytes, device: str | torch.device = "cpu") -> Checkpoint:
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    try:
        # the metadata lives in the JSON header: 8-byte little-endian length, then the header
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + n])
        meta = header.get("__metadata__") or {}
        spec = from_dict(ArchSpec, json.loads(meta["arch"]))
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"not a checkpoint of this library (no architecture in its metadata): {exc}") from None
    model = build_model(spec)
    load_state_strict(model, st_load(data))
    return Checkpoint(
        model=model.to(device),
        spec=spec,
        config=json.loads(meta.get("config", "{}")),
        extra=json.loads(meta.get("extra", "{}")),
    )
