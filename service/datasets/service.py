"""Registering datasets: confine paths to the data root, prove the files load, record the result."""

from __future__ import annotations

import uuid
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from service.datasets import repository
from service.datasets.schemas import DatasetCreate, DatasetList, DatasetRead
from service.errors import Conflict, NotFound, ServiceUnavailable, Unprocessable
from service.events import service as events
from service.pagination import Cursor
from service.tables import Dataset
from service.tenants.service import Principal
from unlearning.specs import DatasetSpec, SpecError, to_dict

if TYPE_CHECKING:
    from unlearning.data import Dataset as LoadedDataset


class PathOutsideDataRoot(Unprocessable):
    slug = "path-outside-data-root"


class DatasetUnusable(Unprocessable):
    slug = "dataset-unusable"


def resolve_in_data_root(root: Path, relative: str, *, field: str) -> Path:
    """The real path of `relative` under `root`; refused if it is absolute or leads outside, symlinks included.

    Containment is checked before existence, so the answer never tells whether a path outside exists.
    """
    pointer = f"#/{field}"
    if PurePosixPath(relative).is_absolute() or PureWindowsPath(relative).is_absolute():
        raise PathOutsideDataRoot(f"{field} must be relative to the data root, got an absolute path", pointer=pointer)
    try:
        target = (root / relative).resolve()  # follows every symlink that exists along the way
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop (RuntimeError before Python 3.13), a NUL byte
        reason = str(exc).replace(f"{root}/", "").replace(str(root), "<data root>")  # no server path in answers
        raise Unprocessable(f"{field} {relative!r} cannot be resolved: {reason}", pointer=pointer) from None
    if not target.is_relative_to(root):
        raise PathOutsideDataRoot(f"{field} {relative!r} resolves outside the data root", pointer=pointer)
    try:
        exists = target.exists()
    except OSError as exc:  # exists() answers only "no such file" itself: a name too long for the file system
        raise Unprocessable(f"{field} {relative!r} cannot be looked up: {exc.strerror}", pointer=pointer) from None
    if not exists:
        raise Unprocessable(f"{field} {relative!r} does not exist in the data root", pointer=pointer)
    return target


def _load(spec: DatasetSpec, root: Path) -> LoadedDataset:
    # Imported on first use: it pulls in PyTorch, which the CLI and a cold app start need not pay for.
    # Loading happens on the CPU; the API process never initialises CUDA.
    from unlearning.data import DataError, load_dataset

    try:
        return load_dataset(spec, device="cpu")
    except DataError as exc:
        # The core names absolute paths; the caller only knows paths relative to the data root.
        message = str(exc).replace(f"{root}/", "").replace(str(root), "<data root>")
        raise DatasetUnusable(f"the dataset does not load: {message}") from None


def register_dataset(session: Session, *, principal: Principal, data_root: Path, body: DatasetCreate) -> Dataset:
    """Validate the dataset by loading it with the core loader, then record it and its shape."""
    root = data_root.resolve()
    if not root.is_dir():
        raise ServiceUnavailable("the service's data root does not exist; an operator must create it")
    folder = resolve_in_data_root(root, body.path, field="path") if body.path else None
    id_file = resolve_in_data_root(root, body.id_file, field="id_file") if body.id_file else None
    rel_folder = folder.relative_to(root).as_posix() if folder else None
    rel_id_file = id_file.relative_to(root).as_posix() if id_file else None
    digits_split = {}
    if body.format == "digits":
        digits_split = {
            "test_fraction": 0.25 if body.test_fraction is None else body.test_fraction,
            "split_seed": 0 if body.split_seed is None else body.split_seed,
        }
    try:
        spec = DatasetSpec(
            format=body.format, path=str(folder or ""), id_file=str(id_file) if id_file else None, **digits_split
        )
    except SpecError as exc:
        raise Unprocessable(str(exc)) from None
    # Load before touching the database: a large dataset takes a while, and no transaction is open meanwhile.
    loaded = _load(spec, root)
    if repository.get_dataset_by_name(session=session, tenant_id=principal.tenant_id, name=body.name) is not None:
        raise Conflict(f"a dataset named {body.name!r} already exists")
    # Stored with paths relative to the root, so the root can move; workers resolve them again.
    stored_spec = DatasetSpec(format=body.format, path=rel_folder or "", id_file=rel_id_file, **digits_split)
    dataset = repository.insert_dataset(
        session=session,
        tenant_id=principal.tenant_id,
        name=body.name,
        format=body.format,
        path=rel_folder,
        id_file=rel_id_file,
        spec=to_dict(stored_spec),
        retain_access=body.retain_access,
        num_train=len(loaded.train),
        num_test=len(loaded.test),
        classes=list(loaded.classes),
        input_shape=list(loaded.input_shape),
    )
    events.append(
        session,
        event_type="dataset.registered",
        subject_type="dataset",
        subject_id=dataset.id,
        actor=principal.actor,
        tenant_id=principal.tenant_id,
        data={
            "name": dataset.name,
            "spec": dataset.spec,
            "retain_access": dataset.retain_access,
            "num_train": dataset.num_train,
            "num_test": dataset.num_test,
            "num_classes": len(dataset.classes),
            "input_shape": dataset.input_shape,
        },
    )
    return dataset


def get_dataset(session: Session, *, principal: Principal, dataset_id: uuid.UUID) -> Dataset:
    dataset = repository.get_dataset(session=session, tenant_id=principal.tenant_id, dataset_id=dataset_id)
    if dataset is None:
        raise NotFound(f"no dataset {dataset_id}")  # also for another tenant's: its existence is not disclosed
    return dataset


def list_datasets(session: Session, *, principal: Principal, page: Cursor) -> DatasetList:
    """One page of the tenant's datasets, oldest first."""
    window = page.window("datasets", repository.OLDEST_FIRST)
    items, next_token = repository.list_datasets(session=session, tenant_id=principal.tenant_id, window=window)
    return DatasetList(items=[DatasetRead.model_validate(d) for d in items], next_page_token=next_token)
