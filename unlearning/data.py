"""Dataset loaders: turn a DatasetSpec into in-memory train/test ImageSets with stable sample IDs.

Every format has an explicit train/test split. Images become float32 N, C, H, W in [0, 1] on the
requested device; anything malformed raises DataError with a one-line message naming the file.
"""

from __future__ import annotations

import gzip
import math
import pickle
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from unlearning.imageset import ImageSet
from unlearning.specs import DatasetSpec


# what each format loader returns: x_train, y_train, x_test, y_test (images N, C, H, W), classes, train IDs or None
_Raw = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str], np.ndarray | None]


class DataError(ValueError):
    """A dataset file is missing or malformed; the message names the file and what is wrong."""


@dataclass
class Dataset:
    train: ImageSet
    test: ImageSet
    classes: list[str]  # class names, indexed by label
    input_shape: tuple[int, int, int]  # C, H, W

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def load_dataset(spec: DatasetSpec, device: str | torch.device = "cpu") -> Dataset:
    """Load both splits of the dataset the spec describes; train IDs come from spec.id_file if given."""
    root = Path(spec.path)
    if spec.format == "digits":
        raw = _load_digits(spec.test_fraction, spec.split_seed)
    else:
        if not root.is_dir():
            raise DataError(f"dataset folder {root} does not exist")
        loaders = {"idx": _load_idx, "cifar10": _load_cifar10, "imagefolder": _load_imagefolder, "npz": _load_npz}
        raw = loaders[spec.format](root)
    x_train, y_train, x_test, y_test, classes, train_ids = raw
    if spec.id_file is not None:
        train_ids = read_id_file(spec.id_file)
        source = spec.id_file
    else:
        source = f"{root / 'train.npz'} (ids)" if train_ids is not None else "positional IDs"
    if train_ids is None:
        train_ids = _positional_ids(len(y_train))
    return _assemble(x_train, y_train, x_test, y_test, classes, train_ids, source, torch.device(device))


# ---- sample IDs ----

def write_id_file(path: str | Path, ids: Iterable[str]) -> None:
    """Write one ID per line; IDs that would not read back unchanged are refused."""
    ids = [str(sid) for sid in ids]
    bad = [sid for sid in ids if not sid or sid != sid.strip() or "\n" in sid or "\r" in sid]
    if bad:
        raise DataError(f"{path}: IDs must be non-empty, without line breaks or outer spaces, e.g. {bad[:5]!r}")
    Path(path).write_text("".join(sid + "\n" for sid in ids), encoding="utf-8")


def read_id_file(path: str | Path) -> np.ndarray:
    """Read one ID per line (outer whitespace stripped) as a str array; an empty line is an error."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"ID file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"ID file {path} cannot be read: {exc}") from None
    lines = text.split("\n")  # not splitlines(): it also breaks at form feeds and other rare separators
    if lines[-1] == "":
        lines.pop()  # the final newline ends the last line, it does not start another
    ids = [line.strip() for line in lines]
    empty = [i + 1 for i, sid in enumerate(ids) if not sid]
    if empty:
        raise DataError(f"ID file {path} has empty lines, e.g. line(s) {empty[:5]}")
    return np.array(ids, dtype=str)


def _positional_ids(n: int) -> np.ndarray:
    return np.arange(n).astype(str)


def _check_unique(ids: np.ndarray, source: str) -> None:
    values, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = values[counts > 1]
        raise DataError(f"{source}: {len(dup)} duplicate sample IDs, e.g. {dup[:10].tolist()}")


# ---- subsets ----

def stratified_subset(data: ImageSet, n: int, seed: int) -> ImageSet:
    """A random subset of n samples spread as evenly over the classes as their sizes allow.

    Each class is shuffled and its samples ranked 0, 1, 2, ...; taking the n lowest ranks fills all
    classes in turn, so small classes give all they have and the rest is shared among the larger ones.
    Ties at the last rank go to classes in a random (seeded) order. The subset keeps the original order.
    """
    if not 0 <= n <= len(data):
        raise DataError(f"stratified_subset: n must lie in [0, {len(data)}], got {n}")
    rng = np.random.default_rng(seed)
    y = data.y.cpu().numpy()
    perm = rng.permutation(len(y))
    y_perm = y[perm]
    by_class = np.argsort(y_perm, kind="stable")  # grouped by class, shuffled within each class
    labels, starts = np.unique(y_perm[by_class], return_index=True)
    rank = np.empty(len(y), dtype=np.int64)
    rank[by_class] = np.arange(len(y)) - np.repeat(starts, np.diff(np.append(starts, len(y))))
    class_order = rng.permutation(len(labels))
    tiebreak = class_order[np.searchsorted(labels, y_perm)]
    chosen = perm[np.lexsort((tiebreak, rank))[:n]]
    return data.subset(np.sort(chosen))


# ---- shared checks and conversion ----

def _assemble(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    classes: list[str],
    train_ids: np.ndarray,
    id_source: str,
    device: torch.device,
) -> Dataset:
    """Check labels, shapes and IDs of both splits (images already N, C, H, W) and build the Dataset."""
    for split, y in (("train", y_train), ("test", y_test)):
        if len(y) == 0:
            raise DataError(f"the {split} split is empty")
        bad = (y < 0) | (y >= len(classes))
        if bad.any():
            raise DataError(f"{split} labels must lie in [0, {len(classes)}), found {np.unique(y[bad])[:10].tolist()}")
    if len(classes) < 2:
        raise DataError(f"the dataset has {len(classes)} class(es); at least 2 are needed")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"train images are {x_train.shape[1:]} (C, H, W) but test images are {x_test.shape[1:]}")
    train_ids = np.asarray(train_ids).astype(str)
    if train_ids.shape != (len(y_train),):
        raise DataError(f"{id_source}: {train_ids.size} IDs for {len(y_train)} training samples")
    _check_unique(train_ids, id_source)
    train = ImageSet(_to_unit_tensor(x_train, device), _to_labels(y_train, device), train_ids)
    test = ImageSet(_to_unit_tensor(x_test, device), _to_labels(y_test, device), _positional_ids(len(y_test)))
    c, h, w = x_train.shape[1:]
    return Dataset(train, test, list(classes), (int(c), int(h), int(w)))


def _check_pixels(x: np.ndarray, source: str) -> None:
    """Pixels must be uint8 (0..255) or float already in [0, 1]; anything else is ambiguous."""
    if x.dtype == np.uint8:
        return
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{source}: images must be uint8 or float in [0, 1], got dtype {x.dtype}")
    if x.size and not (x.min() >= 0.0 and x.max() <= 1.0):  # NaN fails both comparisons
        raise DataError(f"{source}: float images must lie in [0, 1], found [{x.min()}, {x.max()}]")


def _check_labels(y: np.ndarray, n: int, source: str) -> np.ndarray:
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{source}: labels must be a 1-D integer array, got shape {y.shape} dtype {y.dtype}")
    if len(y) != n:
        raise DataError(f"{source}: {len(y)} labels for {n} images")
    return y.astype(np.int64)


def _to_unit_tensor(x: np.ndarray, device: torch.device) -> torch.Tensor:
    """N, C, H, W uint8 or float -> float32 in [0, 1] on device; uint8 travels first, as it is 4x smaller."""
    x = np.ascontiguousarray(x, dtype=x.dtype.newbyteorder("="))
    if not x.flags.writeable:  # np.frombuffer views are read-only, which torch.from_numpy dislikes
        x = x.copy()
    t = torch.from_numpy(x).to(device)
    return t.float().div_(255) if x.dtype == np.uint8 else t.float()


def _to_labels(y: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)).to(device)


def _default_classes(*labels: np.ndarray) -> list[str]:
    """Formats without class names: "0" .. str(max label), over train and test."""
    top = max(int(y.max()) for y in labels if len(y))
    return [str(i) for i in range(top + 1)]


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"missing dataset file {path}")
    return path


# ---- idx: MNIST / Fashion-MNIST ----

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _idx_path(root: Path, stem: str) -> Path:
    for path in (root / stem, root / f"{stem}.gz"):
        if path.is_file():
            return path
    raise DataError(f"missing dataset file {root / stem} (or {stem}.gz)")


def _read_idx(path: str | Path) -> np.ndarray:
    """Parse an IDX file (optionally gzipped): magic 0 0 <dtype code> <ndim>, ndim big-endian u32 dims, data."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path} cannot be read: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path} is not an IDX file: magic number starts {raw[:4].hex()}, expected 0000")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise DataError(f"{path}: unknown IDX dtype code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes for {ndim} dimensions)")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"{path}: header dims {dims} need {expected} data bytes, file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims)


def _load_idx(root: Path) -> _Raw:
    splits = []
    for prefix in ("train", "t10k"):
        image_path = _idx_path(root, f"{prefix}-images-idx3-ubyte")
        label_path = _idx_path(root, f"{prefix}-labels-idx1-ubyte")
        x, y = _read_idx(image_path), _read_idx(label_path)
        if x.ndim != 3:
            raise DataError(f"{image_path}: expected 3 dims (N, H, W), header has {x.shape}")
        if y.ndim != 1:
            raise DataError(f"{label_path}: expected 1 dim (N,), header has {y.shape}")
        if len(x) != len(y):
            raise DataError(f"{image_path} holds {len(x)} images but {label_path} holds {len(y)} labels")
        _check_pixels(x, str(image_path))
        splits += [x[:, None], _check_labels(y, len(x), str(label_path))]  # N, 1, H, W
    x_train, y_train, x_test, y_test = splits
    return x_train, y_train, x_test, y_test, _default_classes(y_train, y_test), None


# ---- cifar10: the python pickles of cifar-10-batches-py ----

# pickle can run arbitrary code, so it is only ever used on the trusted CIFAR data files (the service
# restricts dataset paths to its configured data root), and even then only through this unpickler,
# which resolves nothing but the few numpy names an array needs.
_NUMPY_GLOBALS = {
    "ndarray": np.ndarray,
    "dtype": np.dtype,
    "_reconstruct": np.array(0).__reduce__()[0],  # numpy.(_)core.multiarray._reconstruct, by any version's name
    "scalar": np.float64(0).__reduce__()[0],
    "_frombuffer": np.arange(1).__reduce_ex__(5)[0],
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module == "numpy" or module.startswith(("numpy.core.", "numpy._core."))) and name in _NUMPY_GLOBALS:
            return _NUMPY_GLOBALS[name]
        if (module, name) == ("_codecs", "encode"):  # how protocol-2 pickles written by Python 3 store bytes
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a dataset file")


def _unpickle(path: Path) -> dict[str, object]:
    """Load a CIFAR pickle (Python 2 era: encoding="bytes") and give its dict str keys."""
    try:
        with _require(path).open("rb") as f:
            obj = _ArrayUnpickler(f, encoding="bytes").load()
    except DataError:
        raise
    except Exception as exc:  # unpickling fails in many ways on a corrupt file
        raise DataError(f"{path} is not a CIFAR pickle: {exc}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path} holds a {type(obj).__name__}, expected a dict")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    if "data" not in batch or "labels" not in batch:
        raise DataError(f"{path} lacks 'data' or 'labels' (keys: {sorted(batch)})")
    x = batch["data"]
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: 'data' must be uint8 of shape (N, 3072), got {getattr(x, 'shape', type(x))}")
    y = _check_labels(np.asarray(batch["labels"]), len(x), str(path))
    return x.reshape(-1, 3, 32, 32), y  # rows hold the R, G, B planes in turn: N, 3, 32, 32


def _load_cifar10(root: Path) -> _Raw:
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    meta = _unpickle(root / "batches.meta")
    if "label_names" not in meta:
        raise DataError(f"{root / 'batches.meta'} lacks 'label_names'")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in meta["label_names"]]
    parts = [_cifar_batch(root / f"data_batch_{i}") for i in range(1, 6)]
    x_test, y_test = _cifar_batch(root / "test_batch")
    x_train = np.concatenate([x for x, _ in parts])
    y_train = np.concatenate([y for _, y in parts])
    return x_train, y_train, x_test, y_test, classes, None


# ---- imagefolder: root/{train,test}/<class>/<image> ----

_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def _class_dirs(split_dir: Path) -> dict[str, Path]:
    if not split_dir.is_dir():
        raise DataError(f"missing dataset folder {split_dir}")
    dirs = {d.name: d for d in sorted(split_dir.iterdir()) if d.is_dir() and not d.name.startswith(".")}
    if not dirs:
        raise DataError(f"{split_dir} holds no class folders")
    return dirs


def _image_files(class_dir: Path) -> list[Path]:
    files = sorted(p for p in class_dir.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_EXTENSIONS)
    if not files:
        raise DataError(f"{class_dir} holds no images ({', '.join(_IMAGE_EXTENSIONS)})")
    return files


def _read_images(files: list[Path], mode: str | None) -> tuple[np.ndarray, str]:
    """Decode files into N, H, W, C uint8. The first image fixes the mode (L or RGB) unless given;
    grayscale images join an RGB set losslessly, but a colour image in a grayscale set is an error."""
    from PIL import Image  # only this format needs PIL

    arrays = []
    for path in files:
        try:
            with Image.open(path) as img:
                gray = img.mode in _GRAY_MODES
                mode = mode or ("L" if gray else "RGB")
                if mode == "L" and not gray:
                    raise DataError(f"{path} is a colour ({img.mode}) image but the dataset is grayscale")
                arrays.append(np.asarray(img.convert(mode)))
        except DataError:
            raise
        except Exception as exc:  # PIL raises many types on unreadable files
            raise DataError(f"{path} cannot be read as an image: {exc}") from None
        if arrays[-1].shape != arrays[0].shape:
            raise DataError(f"{path} is {arrays[-1].shape[:2]} (H, W) but {files[0]} is {arrays[0].shape[:2]}")
    x = np.stack(arrays)
    return (x[..., None] if x.ndim == 3 else x), mode  # N, H, W, C


def _load_imagefolder(root: Path) -> _Raw:
    train_dirs = _class_dirs(root / "train")
    test_dirs = _class_dirs(root / "test")
    classes = list(train_dirs)  # sorted
    unknown = sorted(set(test_dirs) - set(train_dirs))
    if unknown:
        raise DataError(f"{root / 'test'} has classes not in {root / 'train'}: {unknown}")
    splits, mode = [], None
    for dirs in (train_dirs, test_dirs):
        files_per_class = [(classes.index(name), _image_files(d)) for name, d in dirs.items()]
        files = [f for _, fs in files_per_class for f in fs]
        y = np.concatenate([np.full(len(fs), label, dtype=np.int64) for label, fs in files_per_class])
        x, mode = _read_images(files, mode)
        splits += [x.transpose(0, 3, 1, 2), y]  # N, C, H, W
    x_train, y_train, x_test, y_test = splits
    return x_train, y_train, x_test, y_test, classes, None


# ---- npz: root/train.npz and root/test.npz with x, y (and optional ids, classes) ----

def _npz_split(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(_require(path), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except DataError:
        raise
    except ValueError as exc:  # object arrays need pickle, which is refused
        raise DataError(f"{path}: {exc} (store ids and classes as str arrays)") from None
    except Exception as exc:
        raise DataError(f"{path} is not a readable .npz file: {exc}") from None
    missing = sorted({"x", "y"} - set(arrays))
    if missing:
        raise DataError(f"{path} lacks array(s) {missing} (has {sorted(arrays)})")
    x = arrays["x"]
    _check_pixels(x, f"{path} (x)")
    if x.ndim == 3:
        x = x[:, None]  # N, 1, H, W
    elif x.ndim == 4 and x.shape[3] in (1, 3):
        x = x.transpose(0, 3, 1, 2)  # channels-last -> N, C, H, W
    elif not (x.ndim == 4 and x.shape[1] in (1, 3)):
        raise DataError(f"{path}: x of shape {x.shape} is neither (N,H,W), (N,H,W,C) nor (N,C,H,W) with C in 1, 3")
    arrays["x"] = x
    arrays["y"] = _check_labels(arrays["y"], len(x), f"{path} (y)")
    return arrays


def _load_npz(root: Path) -> _Raw:
    train, test = _npz_split(root / "train.npz"), _npz_split(root / "test.npz")
    if "classes" in train:
        classes = [str(c) for c in np.asarray(train["classes"]).ravel()]
        if "classes" in test and [str(c) for c in np.asarray(test["classes"]).ravel()] != classes:
            raise DataError(f"{root / 'test.npz'}: classes differ from those in {root / 'train.npz'}")
    else:
        classes = _default_classes(train["y"], test["y"])
    ids = train.get("ids")
    if ids is not None and ids.shape != (len(train["y"]),):
        raise DataError(f"{root / 'train.npz'}: ids has shape {ids.shape}, expected ({len(train['y'])},)")
    return train["x"], train["y"], test["x"], test["y"], classes, ids


# ---- digits: scikit-learn's bundled 8x8 digits, split here ----

def _load_digits(test_fraction: float, split_seed: int) -> _Raw:
    from sklearn.datasets import load_digits  # imported late: sklearn is slow to import
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]  # N, 1, 8, 8; pixel values are 0..16
    y = digits.target.astype(np.int64)
    _check_stratified_split(test_fraction, len(y), num_classes=10)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=split_seed, stratify=y
    )
    return x_train, y_train, x_test, y_test, [str(i) for i in range(10)], None


def _check_stratified_split(test_fraction: float, n: int, *, num_classes: int) -> None:
    """train_test_split's own rule, checked first so the message says which side ran short: ceil(fraction * n)
    samples are held out, and a stratified split needs one sample of every class on each side."""
    n_test = math.ceil(test_fraction * n)
    if min(n_test, n - n_test) < num_classes:
        # the advice rounds inwards, so both ends it names are valid fractions
        low = (math.floor((num_classes - 1) / n * 1e4) + 1) / 1e4
        high = math.floor((n - num_classes) / n * 1e4) / 1e4
        raise DataError(
            f"digits: test_fraction {test_fraction} holds out {n_test} of the {n} samples and trains on "
            f"{n - n_test}, but a stratified split needs at least one sample of each of the {num_classes} classes "
            f"on both sides: use a test_fraction from {low} to {high}"
        )
