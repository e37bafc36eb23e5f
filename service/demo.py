"""The demo set-up of the embedded default: on first start, a 'demo' tenant, a dataset of real images and a
model trained on it, so that the README's examples work at once.

Fashion-MNIST (Debian's dataset-fashion-mnist, in settings.demo_fashion_mnist_dir) is used when its files are
on the machine, scikit-learn's bundled digits otherwise; nothing is downloaded. The model is trained here, on
this machine's CPU, in about a minute, and registered through the same service functions the API calls.

Once registered, the model gets one tuning job (the service's default procedure and grid), which the
worker runs in the background: the API answers /healthz at once, and later unlearning jobs use the rate
and schedule it chose.

Every step looks for what an earlier start made before doing it, so a first start that was interrupted (or
a ledger that lost its demo) is completed by the next one; demo.json is written last, and only once the
ledger holds the whole demo.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from service.datasets import repository as datasets_repo
from service.datasets.schemas import DatasetCreate
from service.datasets.service import register_dataset
from service.db import session_factory
from service.errors import Unauthorized
from service.jobs import repository as jobs_repo
from service.jobs.service import request_tuning
from service.models import repository as models_repo
from service.models.datasets import absolute_spec
from service.models.service import register_model
from service.models.upload import ModelUpload
from service.settings import Settings
from service.tables import Dataset, JobKind, Model
from service.tenants import repository as tenants_repo
from service.tenants.service import CLI_ACTOR, Principal, authenticate, create_tenant, issue_key

DEMO_TENANT = "demo"
DEMO_MODEL = "demo-classifier"
# a class-balanced subset keeps the demo's training and each unlearning job to about a minute on 2 cores; the
# test split only costs predictions, and its scored half is the never-seen population every audit p-value and
# accuracy interval is measured against: 2,000 scored samples resolve p-values to 0.0005 and test accuracy to
# about +-1.5 points
DEMO_TRAIN, DEMO_TEST = 4000, 4000
# training-set positions of the sample IDs demo.json offers the README's examples (both demos have more)
EXAMPLE_POSITIONS = (17, 404, 1000, 1300)


@dataclass(frozen=True)
class Demo:
    key_file: Path
    dataset_id: str
    model_id: str


@dataclass(frozen=True)
class _DemoData:
    body: DatasetCreate  # the registration request
    write: Callable[[], None]  # writes the dataset's files under the data root (none for digits)
    arch: dict[str, Any]
    augment: dict[str, Any]


def key_file(settings: Settings) -> Path:
    return Path(settings.signing_key_file).parent / "demo-api-key"


def info_file(settings: Settings) -> Path:
    return key_file(settings).with_name("demo.json")


def ensure_demo(settings: Settings, *, log: Callable[[str], object] = print) -> Demo:
    """The demo, created or completed as needed: tenant and admin key, dataset, trained model, demo.json."""
    factory = session_factory(settings.database_url)
    key_path, info_path = key_file(settings), info_file(settings)
    principal = _principal(factory, key_path, log)
    with factory() as session:
        model = models_repo.get_model_by_name(session=session, tenant_id=principal.tenant_id, name=DEMO_MODEL)
        dataset = _dataset_of(session, principal, model) if model is not None else None
    if model is not None and dataset is not None and _recorded(info_path) == (str(dataset.id), str(model.id)):
        _ensure_tuning(factory, principal, model, log)  # a demo made before tuning jobs existed gets one too
        return Demo(key_path, str(dataset.id), str(model.id))  # a later start: complete already

    if model is None:
        from unlearning.data import load_dataset

        choice = _demo_data(settings)
        data_root = Path(settings.data_root)
        data_root.mkdir(parents=True, exist_ok=True)  # datasets are registered from inside it
        with factory() as session:
            dataset = datasets_repo.get_dataset_by_name(session=session, tenant_id=principal.tenant_id,
                                                        name=choice.body.name)  # fmt: skip
        if dataset is None:
            choice.write()
            # the registration functions end their read transactions themselves (no lock is held while they
            # load data or weights), so each runs in a plain session committed here, as the API's dependency does
            with factory() as session:
                dataset = register_dataset(session, principal=principal, data_root=data_root, body=choice.body)
                session.commit()
        loaded = load_dataset(absolute_spec(dataset, data_root))  # as a worker will load it
        log(f"demo: training a small CNN on {len(loaded.train)} {choice.body.name} images (a minute or less) ...")
        checkpoint = _train(loaded, choice.arch, choice.augment)
        manifest = {
            "name": DEMO_MODEL,
            "dataset_id": str(dataset.id),
            "architecture": choice.arch,
            "unlearn_config": {"method": "amun", "epochs": 5, "lr": 0.05, "augment": choice.augment},
        }
        with factory() as session:
            model = register_model(session, principal=principal, settings=settings, upload=ModelUpload(
                manifest=json.dumps(manifest), checkpoint=io.BytesIO(checkpoint), checkpoint_size=len(checkpoint),
                filename="demo.safetensors"))  # fmt: skip
            session.commit()

    assert dataset is not None  # a model row always references its dataset (foreign key)
    _ensure_tuning(factory, principal, model, log)
    _write_atomically(info_path, json.dumps(_info(dataset, model), indent=2) + "\n")
    log(f"demo: tenant '{DEMO_TENANT}', dataset {dataset.id}, model {model.id}; admin key in {key_path}, "
        f"sample IDs in {info_path}")  # fmt: skip
    return Demo(key_path, str(dataset.id), str(model.id))


def _principal(factory: sessionmaker[Session], key_path: Path, log: Callable[[str], object]) -> Principal:
    """The demo tenant's admin key from key_path: the tenant is created if missing, and a new key issued when
    the file is missing or its key is not this ledger's. The file is written before the key's transaction
    commits, so a crash in between leaves a file whose key the next start replaces, never a key without a file."""
    with factory() as session, session.begin():
        tenant = tenants_repo.get_tenant_by_name(session=session, name=DEMO_TENANT)
        if tenant is not None and key_path.is_file():
            try:
                principal = authenticate(session, key=key_path.read_text().strip())
            except Unauthorized:
                principal = None
            if principal is not None and principal.tenant_id == tenant.id and principal.allows("admin"):
                return principal
        if tenant is None:
            tenant, issued = create_tenant(session, name=DEMO_TENANT)
        else:
            log(f"demo: tenant '{DEMO_TENANT}' exists without a working key in {key_path}; issuing a new admin key")
            issued = issue_key(session, tenant_id=tenant.id, name="demo admin key", scopes=["admin"], actor=CLI_ACTOR)
        _write_atomically(key_path, issued.key + "\n")
        return Principal(tenant_id=tenant.id, api_key_id=issued.api_key.id, scopes=frozenset({"admin"}))


def _ensure_tuning(factory: sessionmaker[Session], principal: Principal, model: Model,
                   log: Callable[[str], object]) -> None:  # fmt: skip
    """Queue the demo model's tuning job, unless it was ever tuned or given one (a failed one is not retried
    on every start: POST /v1/models/{id}/tuning does that). Queuing takes milliseconds; the job runs in the
    background, and deletion requests sent before it finishes use the manifest's config."""
    with factory() as session, session.begin():
        fresh = models_repo.get_model(session=session, tenant_id=principal.tenant_id, model_id=model.id)
        if fresh is None or fresh.tuning is not None:
            return
        if jobs_repo.has_job(session=session, model_id=model.id, kind=JobKind.tuning):
            return
        job = request_tuning(session, principal=principal, model_id=model.id, body=None)
    log(f"demo: queued job {job.id} to tune the model's learning rate and schedule in the background "
        f"(GET /v1/jobs/{job.id}); later unlearning jobs use its choice")  # fmt: skip


def _dataset_of(session: Session, principal: Principal, model: Model) -> Dataset | None:
    return datasets_repo.get_dataset(session=session, tenant_id=principal.tenant_id, dataset_id=model.dataset_id)


def _recorded(info_path: Path) -> tuple[str, str] | None:
    try:
        info = json.loads(info_path.read_text())
        return str(info["dataset_id"]), str(info["model_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _info(dataset: Dataset, model: Model) -> dict[str, Any]:
    # both demo datasets have positional sample IDs, "0" to str(num_train - 1)
    count = dataset.num_train
    return {
        "dataset_id": str(dataset.id),
        "model_id": str(model.id),
        "dataset": dataset.name,
        "sample_ids": {"first": "0", "last": str(count - 1), "count": count},
        "example_sample_ids": [str(position) for position in EXAMPLE_POSITIONS if position < count],
    }


def _write_atomically(path: Path, text: str) -> None:
    """Write a file that is either absent or whole (temporary name, fsync, rename), readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _demo_data(settings: Settings) -> _DemoData:
    """The demo dataset's registration body, a loader of the data itself, and the architecture and
    augmentation that suit it."""
    source = Path(settings.demo_fashion_mnist_dir)
    if not (source / "train-images-idx3-ubyte.gz").exists():
        return _DemoData(
            body=DatasetCreate(name="digits", format="digits"),
            write=lambda: None,
            arch={"name": "small_cnn", "num_classes": 10, "in_channels": 1, "image_size": 8, "width": 16},
            augment={"crop_padding": 0, "hflip": False},
        )
    folder = Path(settings.data_root) / "fashion-mnist-demo"
    return _DemoData(
        body=DatasetCreate(name="fashion-mnist-demo", format="npz", path="fashion-mnist-demo"),
        write=lambda: _write_fashion_mnist_subset(source, folder),
        arch={"name": "small_cnn", "num_classes": 10, "in_channels": 1, "image_size": 28, "width": 16},
        augment={"crop_padding": 2, "hflip": True},
    )


def _write_fashion_mnist_subset(source: Path, folder: Path) -> None:
    """The class-balanced subset of Fashion-MNIST, written to folder as train.npz and test.npz (each whole or
    absent); the same seed gives the same files on every start."""
    import numpy as np

    from unlearning.data import Dataset, load_dataset, stratified_subset
    from unlearning.specs import DatasetSpec

    full = load_dataset(DatasetSpec("idx", str(source)))
    data = Dataset(stratified_subset(full.train, DEMO_TRAIN, seed=0), stratified_subset(full.test, DEMO_TEST, seed=0),
                   full.classes, full.input_shape)  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    for split, part in (("train", data.train), ("test", data.test)):
        x = (part.x.numpy() * 255).round().astype(np.uint8)  # N, 1, 28, 28 as the original bytes
        # positional sample IDs ("0" to "3999"), so the README's examples can name samples that exist
        tmp = folder / f".{split}.{uuid.uuid4().hex}.npz"
        np.savez_compressed(tmp, x=x, y=part.y.numpy())
        os.replace(tmp, folder / f"{split}.npz")


def _train(data, arch: dict, augment: dict) -> bytes:
    from unlearning.models import checkpoint_bytes
    from unlearning.progress import TerminalBar
    from unlearning.specs import ArchSpec, AugmentSpec, TrainConfig
    from unlearning.train import train_model

    recipe = TrainConfig(epochs=30, lr=0.05, batch_size=128, augment=AugmentSpec(**augment))
    result = train_model(ArchSpec(**arch), data.train, recipe, progress=TerminalBar("demo", stream=sys.stderr))
    return checkpoint_bytes(result.model, recipe, {"demo": True})
