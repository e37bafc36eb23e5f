"""The demo set-up of the embedded default: on first start, a 'demo' tenant, a dataset of real images and a
model trained on it, so that the README's examples work at once.

Fashion-MNIST (Debian's dataset-fashion-mnist) is used when its files are on the machine, scikit-learn's
bundled digits otherwise; nothing is downloaded. The model is trained here, on this machine's CPU, in
about a minute, and registered through the same service functions the API calls.
"""

from __future__ import annotations

import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from service.datasets.schemas import DatasetCreate
from service.datasets.service import register_dataset
from service.db import session_factory
from service.models.service import register_model
from service.models.upload import ModelUpload
from service.settings import Settings
from service.tenants import repository as tenants_repo
from service.tenants.service import Principal, create_tenant

DEMO_TENANT = "demo"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
# a class-balanced subset keeps the demo's training and each unlearning job to about a minute on 2 cores
DEMO_TRAIN, DEMO_TEST = 4000, 1000


@dataclass(frozen=True)
class Demo:
    key_file: Path
    dataset_id: str
    model_id: str


def key_file(settings: Settings) -> Path:
    return Path(settings.signing_key_file).parent / "demo-api-key"


def ensure_demo(settings: Settings, *, log=print) -> Demo | None:
    """Create the demo once; later starts find it and return it. None when a 'demo' tenant exists that
    this function did not finish setting up."""
    factory = session_factory(settings.database_url)
    path = key_file(settings)
    info_path = path.with_name("demo.json")
    with factory() as session:
        exists = tenants_repo.get_tenant_by_name(session=session, name=DEMO_TENANT) is not None
    if exists:
        if info_path.exists():
            info = json.loads(info_path.read_text())
            return Demo(path, info["dataset_id"], info["model_id"])
        log(f"demo: a tenant named 'demo' exists but {info_path} does not (set up by hand, or an interrupted "
            "first start); leaving it alone. Remove the var/ folder to start the embedded default afresh.")
        return None

    dataset_body, data, arch, augment = _demo_data(settings)
    log(f"demo: training a small CNN on {len(data.train)} {dataset_body.name} images (about a minute) ...")
    checkpoint = _train(data, arch, augment)

    with factory() as session, session.begin():
        tenant, issued = create_tenant(session, name=DEMO_TENANT)
        principal = Principal(tenant_id=tenant.id, api_key_id=issued.api_key.id, scopes=frozenset({"admin"}))
    # the registration functions end their read transactions themselves (no lock is held while they
    # load data or weights), so each runs in a plain session committed here, as the API's dependency does
    with factory() as session:
        dataset_id = register_dataset(session, principal=principal, data_root=Path(settings.data_root),
                                      body=dataset_body).id
        session.commit()
    manifest = {
        "name": "demo-classifier",
        "dataset_id": str(dataset_id),
        "architecture": arch,
        "unlearn_config": {"method": "amun", "epochs": 5, "lr": 0.05, "augment": augment},
    }
    with factory() as session:
        model_id = register_model(session, principal=principal, settings=settings, upload=ModelUpload(
            manifest=json.dumps(manifest), checkpoint=io.BytesIO(checkpoint), checkpoint_size=len(checkpoint),
            filename="demo.safetensors")).id
        session.commit()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(issued.key + "\n")
    os.chmod(path, 0o600)
    info_path.write_text(json.dumps({"dataset_id": str(dataset_id), "model_id": str(model_id)}) + "\n")
    log(f"demo: tenant 'demo', dataset {dataset_id}, model {model_id}; admin key in {path}")
    return Demo(path, str(dataset_id), str(model_id))


def _demo_data(settings: Settings):
    """The demo dataset's registration body, the data itself (written under the data root if needed), and
    the architecture and augmentation that suit it."""
    import numpy as np

    from unlearning.data import Dataset, load_dataset, stratified_subset
    from unlearning.specs import DatasetSpec

    if not (FASHION_MNIST / "train-images-idx3-ubyte.gz").exists():
        arch = {"name": "small_cnn", "num_classes": 10, "in_channels": 1, "image_size": 8, "width": 16}
        return (DatasetCreate(name="digits", format="digits"), load_dataset(DatasetSpec("digits", "")), arch,
                {"crop_padding": 0, "hflip": False})
    full = load_dataset(DatasetSpec("idx", str(FASHION_MNIST)))
    data = Dataset(stratified_subset(full.train, DEMO_TRAIN, seed=0), stratified_subset(full.test, DEMO_TEST, seed=0),
                   full.classes, full.input_shape)
    folder = Path(settings.data_root) / "fashion-mnist-demo"
    folder.mkdir(parents=True, exist_ok=True)
    for split, part in (("train", data.train), ("test", data.test)):
        x = (part.x.numpy() * 255).round().astype(np.uint8)  # N, 1, 28, 28 as the original bytes
        # positional sample IDs ("0" to "3999"), so the README's examples can name samples that exist
        np.savez_compressed(folder / f"{split}.npz", x=x, y=part.y.numpy())
    arch = {"name": "small_cnn", "num_classes": 10, "in_channels": 1, "image_size": 28, "width": 16}
    return (DatasetCreate(name="fashion-mnist-demo", format="npz", path="fashion-mnist-demo"),
            load_dataset(DatasetSpec("npz", str(folder))), arch, {"crop_padding": 2, "hflip": True})


def _train(data, arch: dict, augment: dict) -> bytes:
    from unlearning.models import checkpoint_bytes
    from unlearning.progress import TerminalBar
    from unlearning.specs import ArchSpec, AugmentSpec, TrainConfig
    from unlearning.train import train_model

    recipe = TrainConfig(epochs=30, lr=0.05, batch_size=128, augment=AugmentSpec(**augment))
    result = train_model(ArchSpec(**arch), data.train, recipe, progress=TerminalBar("demo", stream=sys.stderr))
    return checkpoint_bytes(result.model, recipe, {"demo": True})
