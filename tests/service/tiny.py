"""A tiny digits dataset with string sample IDs, a small CNN that memorised it, and HTTP helpers that register
both and submit deletion requests. Shared by the models, requests, jobs and worker tests.

The model is trained once per test process (a few seconds on 2 CPU cores) and uploaded as plain
safetensors, as a caller would.
"""

from __future__ import annotations

import io
import json
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastapi.testclient import TestClient
from safetensors.torch import save as st_save

from service.db import session_factory
from service.jobs import service as jobs
from tests.service.factories import TenantKey
from unlearning.data import Dataset, load_dataset, stratified_subset
from unlearning.specs import ArchSpec, AugmentSpec, DatasetSpec, TrainConfig, to_dict
from unlearning.train import train_model

# Tests share two busy cores: one intra-op thread per process avoids oversubscription (10x slower otherwise).
torch.set_num_threads(1)

# The tiny model's held-out half has 225 samples (one is 0.44 points), and its jobs at lr 0.05 dip by up to
# 6 points mid-run before they recover: at the service's 1-point default the guard would stop nearly every
# job before any point passed. The tests run it at a margin that catches a collapse (tests/worker/test_jobs.py
# tests the guard itself at 0 and at 100 points); tests of faults, which need jobs that run their whole
# length, use NO_GUARD.
GUARD_MAX_ACC_DROP = 10.0
NO_GUARD = 100.0

N_TRAIN = 300
ARCH = ArchSpec("small_cnn", num_classes=10, in_channels=1, image_size=8, width=8)
# no augmentation and many passes over few samples: the model memorises its training set, so forgetting
# shows (forget-set confidence near 1, test confidence lower)
RECIPE = TrainConfig(epochs=15, lr=0.05, batch_size=32, augment=AugmentSpec(crop_padding=0, hflip=False), seed=0)
# small and fast: two epochs of AMUN with a fixed starting radius
UNLEARN = {
    "method": "amun",
    "epochs": 2,
    "lr": 0.05,
    "batch_size": 64,
    "augment": {"crop_padding": 1, "hflip": False},
    "attack": {"eps_init": 0.2, "steps": 10},
}
DATASET_NAME = "tiny-digits"


def sample_id(i: int) -> str:
    return f"digit-{i:04d}"


@lru_cache(maxsize=1)
def tiny_data() -> Dataset:
    """scikit-learn's digits: 300 training samples (IDs digit-0000 ...) and the 450 test samples."""
    full = load_dataset(DatasetSpec("digits", ""))
    train = stratified_subset(full.train, N_TRAIN, seed=0)
    train.ids = np.array([sample_id(i) for i in range(len(train))])
    return Dataset(train, full.test, full.classes, full.input_shape)


def write_dataset(data_root: Path) -> None:
    """The tiny set as npz files in the data root (float pixels in [0, 1], string IDs)."""
    data = tiny_data()
    folder = data_root / DATASET_NAME
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "train.npz", x=data.train.x.numpy(), y=data.train.y.numpy(), ids=data.train.ids.astype(str))
    np.savez(folder / "test.npz", x=data.test.x.numpy(), y=data.test.y.numpy())


@lru_cache(maxsize=1)
def trained_state() -> dict[str, torch.Tensor]:
    model = train_model(ARCH, tiny_data().train, RECIPE).model
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def safetensors_bytes(state: dict[str, torch.Tensor] | None = None) -> bytes:
    return st_save(state if state is not None else trained_state())


def pickled_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def register_dataset(client: TestClient, tenant: TenantKey, data_root: Path) -> dict[str, Any]:
    write_dataset(data_root)
    response = client.post(
        "/v1/datasets", json={"name": DATASET_NAME, "format": "npz", "path": DATASET_NAME}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


def manifest(dataset_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "tiny",
        "dataset_id": dataset_id,
        "architecture": to_dict(ARCH),
        "unlearn_config": UNLEARN,
        **overrides,
    }


def upload(client: TestClient, tenant: TenantKey, body: dict[str, Any], checkpoint: bytes) -> Any:
    return client.post(
        "/v1/models",
        files={
            "manifest": (None, json.dumps(body), "application/json"),
            "checkpoint": ("model.safetensors", checkpoint, "application/octet-stream"),
        },
        headers=tenant.headers,
    )


def register_model(client: TestClient, tenant: TenantKey, data_root: Path, **overrides: Any) -> dict[str, Any]:
    """Dataset and model registered; the model's read body."""
    dataset = register_dataset(client, tenant, data_root)
    response = upload(client, tenant, manifest(dataset["id"], **overrides), safetensors_bytes())
    assert response.status_code == 201, response.text
    return response.json()


def submit(
    client: TestClient,
    tenant: TenantKey,
    model_id: str,
    ids: list[str],
    *,
    key: str | None = None,
    **fields: Any,
) -> Any:
    headers = {**tenant.headers, **({"Idempotency-Key": key} if key else {})}
    return client.post(
        f"/v1/models/{model_id}/deletion-requests", json={"sample_ids": ids, **fields}, headers=headers
    )


def claim(database_url: str, job_id: str, *, owner: str = "test-worker", lease_seconds: float = 60.0) -> bool:
    """Claim a job as a worker would, without running it (the job is then 'started')."""
    with session_factory(database_url)() as session, session.begin():
        return jobs.claim(session, job_id=uuid.UUID(job_id), owner=owner, lease_seconds=lease_seconds) is not None
