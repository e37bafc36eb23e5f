"""The dataset a model was trained on, as the core library loads it: its spec with absolute paths under
the data root, and its training-sample IDs, cached per process (loading Fashion-MNIST takes about a second).
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from pathlib import Path

from service.datasets.service import resolve_in_data_root
from service.errors import ServiceUnavailable, Unprocessable
from service.tables import Dataset
from unlearning.specs import DatasetSpec, SpecError, from_dict

# Formats whose training IDs are "0", "1", ... unless an ID file is given; npz may carry an ids array.
_POSITIONAL_FORMATS = ("idx", "cifar10", "imagefolder", "digits")
_CACHED_DATASETS = 16  # distinct datasets whose ID sets a process keeps


class DatasetUnavailable(ServiceUnavailable):
    """A registered dataset's files are gone or changed: an operator must restore them (not the caller's fault)."""


def absolute_spec(dataset: Dataset, data_root: Path) -> DatasetSpec:
    """The stored spec (paths relative to the data root) with its paths resolved, containment re-checked.

    The root may have moved since registration, and a symlink inside it may have changed: both are
    checked again here, before anything is read.
    """
    root = data_root.resolve()
    stored = dict(dataset.spec)
    try:
        if stored.get("path"):
            stored["path"] = str(resolve_in_data_root(root, stored["path"], field="path"))
        if stored.get("id_file"):
            stored["id_file"] = str(resolve_in_data_root(root, stored["id_file"], field="id_file"))
        return from_dict(DatasetSpec, stored)
    except (Unprocessable, SpecError) as exc:
        detail = exc.detail if isinstance(exc, Unprocessable) else str(exc)
        raise DatasetUnavailable(f"dataset {dataset.id} is unusable now: {detail}") from None


class TrainIdCache:
    """Training-sample IDs per dataset, loaded once per process and kept for the most recent datasets.

    Datasets are immutable once registered, so an entry never goes stale while its files stay unchanged;
    a worker still checks every ID against the data it actually loads.
    """

    def __init__(self, capacity: int = _CACHED_DATASETS) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._loading: dict[uuid.UUID, threading.Lock] = {}
        self._ids: OrderedDict[uuid.UUID, frozenset[str]] = OrderedDict()

    def get(self, dataset: Dataset, data_root: Path) -> frozenset[str]:
        with self._lock:
            if dataset.id in self._ids:
                self._ids.move_to_end(dataset.id)
                return self._ids[dataset.id]
            # one loader per dataset: concurrent requests for the same dataset wait for the first load
            loading = self._loading.setdefault(dataset.id, threading.Lock())
        with loading:
            with self._lock:
                if dataset.id in self._ids:
                    return self._ids[dataset.id]
            try:
                ids = _load_train_ids(dataset, data_root)
            finally:
                with self._lock:
                    self._loading.pop(dataset.id, None)
            with self._lock:
                self._ids[dataset.id] = ids
                while len(self._ids) > self.capacity:
                    self._ids.popitem(last=False)
            return ids


def _load_train_ids(dataset: Dataset, data_root: Path) -> frozenset[str]:
    if dataset.id_file is None and dataset.format in _POSITIONAL_FORMATS:
        # the core's positional scheme: no need to decode tens of thousands of images to know "0".."n-1"
        return frozenset(str(i) for i in range(dataset.num_train))
    from unlearning.data import (  # PyTorch: imported on first use only
        DataError,
        load_dataset,
    )

    spec = absolute_spec(dataset, data_root)
    try:
        return frozenset(load_dataset(spec, device="cpu").train.ids.tolist())
    except DataError as exc:
        # the core names absolute paths; callers only know paths relative to the data root
        root = str(data_root.resolve())
        message = str(exc).replace(f"{root}/", "").replace(root, "<data root>")
        raise DatasetUnavailable(f"dataset {dataset.id} no longer loads: {message}") from None


train_ids = TrainIdCache()
