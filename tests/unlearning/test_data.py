"""Dataset loaders: each format is written in its real on-disk layout, loaded, and checked value by value."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unlearning.data import DataError, load_dataset, read_id_file, stratified_subset, write_id_file
from unlearning.imageset import ImageSet
from unlearning.specs import DatasetSpec, SpecError

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


# ---- writers for the real formats ----

_IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
              np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding: 0 0 <dtype code> <ndim>, big-endian u32 dims, big-endian data."""
    header = struct.pack(">BBBB", 0, 0, _IDX_CODES[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx_dataset(root: Path, arrays: dict[str, np.ndarray], gz: bool) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (root / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (root / stem).write_bytes(data)


def idx_arrays(rng: np.random.Generator, n_train: int = 12, n_test: int = 5, h: int = 6, w: int = 7):
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, h, w), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, h, w), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.arange(n_test, dtype=np.uint8) % 10,
    }


def cifar_pickle(obj: object) -> bytes:
    """Pickle as the original Python 2 files do: protocol 2, bytes keys, numpy.core module names."""
    return pickle.dumps(obj, protocol=2).replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


def write_cifar(root: Path, rng: np.random.Generator, per_batch: int = 2, n_test: int = 3):
    root.mkdir(parents=True)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (root / "batches.meta").write_bytes(cifar_pickle({b"label_names": names, b"num_vis": 3072}))
    batches = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = n_test if name == "test_batch" else per_batch
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        (root / name).write_bytes(cifar_pickle({b"batch_label": name.encode(), b"data": data, b"labels": labels}))
        batches.append((data, labels))
    return batches


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# ---- idx ----

@pytest.mark.parametrize("gz", [False, True])
def test_idx_loads_images_labels_and_positional_ids(tmp_path, rng, gz):
    arrays = idx_arrays(rng)
    write_idx_dataset(tmp_path, arrays, gz=gz)
    data = load_dataset(DatasetSpec("idx", str(tmp_path)))
    assert data.input_shape == (1, 6, 7)
    assert data.train.x.shape == (12, 1, 6, 7) and data.train.x.dtype == torch.float32
    assert data.test.x.shape == (5, 1, 6, 7)
    expected = torch.from_numpy(arrays["train-images-idx3-ubyte"]).float()[:, None] / 255
    torch.testing.assert_close(data.train.x, expected)
    assert data.train.y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert data.test.y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert data.train.ids.tolist() == [str(i) for i in range(12)]
    assert data.test.ids.tolist() == [str(i) for i in range(5)]
    assert data.classes == [str(i) for i in range(10)]


def test_idx_missing_file_names_its_path(tmp_path, rng):
    arrays = idx_arrays(rng)
    del arrays["t10k-labels-idx1-ubyte"]
    write_idx_dataset(tmp_path, arrays, gz=True)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_dataset(DatasetSpec("idx", str(tmp_path)))


def test_idx_bad_magic_is_rejected(tmp_path, rng):
    write_idx_dataset(tmp_path, idx_arrays(rng), gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"\x01\x02" + path.read_bytes()[2:])
    with pytest.raises(DataError, match="not an IDX file"):
        load_dataset(DatasetSpec("idx", str(tmp_path)))


def test_idx_unknown_dtype_code_is_rejected(tmp_path, rng):
    write_idx_dataset(tmp_path, idx_arrays(rng), gz=False)
    path = tmp_path / "train-labels-idx1-ubyte"
    raw = bytearray(path.read_bytes())
    raw[2] = 0x07
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="dtype code 0x07"):
        load_dataset(DatasetSpec("idx", str(tmp_path)))


def test_idx_truncated_data_does_not_match_header(tmp_path, rng):
    write_idx_dataset(tmp_path, idx_arrays(rng), gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-5]))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: header dims \(12, 6, 7\)"):
        load_dataset(DatasetSpec("idx", str(tmp_path)))


def test_idx_image_and_label_counts_must_match(tmp_path, rng):
    arrays = idx_arrays(rng)
    arrays["train-labels-idx1-ubyte"] = arrays["train-labels-idx1-ubyte"][:-1]
    write_idx_dataset(tmp_path, arrays, gz=False)
    with pytest.raises(DataError, match="12 images but .* 11 labels"):
        load_dataset(DatasetSpec("idx", str(tmp_path)))


@pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="Fashion-MNIST is not installed")
def test_real_fashion_mnist_loads():
    data = load_dataset(DatasetSpec("idx", str(FASHION_MNIST)))
    assert len(data.train) == 60000 and len(data.test) == 10000
    assert data.input_shape == (1, 28, 28) and data.train.x.shape == (60000, 1, 28, 28)
    assert data.classes == [str(i) for i in range(10)]
    assert torch.bincount(data.train.y).tolist() == [6000] * 10
    assert 0.0 <= data.test.x.min() and data.test.x.max() <= 1.0


# ---- cifar10 ----

@pytest.mark.parametrize("nested", [False, True])
def test_cifar10_loads_batches_in_order_with_meta_classes(tmp_path, rng, nested):
    folder = tmp_path / "cifar-10-batches-py" if nested else tmp_path / "cifar"
    batches = write_cifar(folder, rng)
    data = load_dataset(DatasetSpec("cifar10", str(tmp_path if nested else folder)))
    assert data.classes[:3] == ["airplane", "automobile", "bird"] and len(data.classes) == 10
    assert data.input_shape == (3, 32, 32)
    assert data.train.x.shape == (10, 3, 32, 32) and data.test.x.shape == (3, 3, 32, 32)
    train_data = np.concatenate([d for d, _ in batches[:5]])
    assert data.train.y.tolist() == sum((labels for _, labels in batches[:5]), [])
    assert data.test.y.tolist() == batches[5][1]
    # each row holds the red plane, then green, then blue
    red_of_sample_3 = train_data[3, :1024].reshape(32, 32)
    torch.testing.assert_close(data.train.x[3, 0], torch.from_numpy(red_of_sample_3).float() / 255)
    blue_of_test_0 = batches[5][0][0, 2048:].reshape(32, 32)
    torch.testing.assert_close(data.test.x[0, 2], torch.from_numpy(blue_of_test_0).float() / 255)
    assert data.train.ids.tolist() == [str(i) for i in range(10)]


def test_cifar10_missing_batch_names_its_path(tmp_path, rng):
    write_cifar(tmp_path / "c", rng)
    (tmp_path / "c" / "data_batch_4").unlink()
    with pytest.raises(DataError, match="data_batch_4"):
        load_dataset(DatasetSpec("cifar10", str(tmp_path / "c")))


class _RunsCode:
    def __reduce__(self):
        return (os.mkdir, ("pwned",))


def test_cifar10_pickle_that_would_run_code_is_refused(tmp_path, rng, monkeypatch):
    write_cifar(tmp_path / "c", rng)
    (tmp_path / "c" / "test_batch").write_bytes(pickle.dumps({b"data": _RunsCode(), b"labels": []}, protocol=2))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"test_batch is not a CIFAR pickle: global .*mkdir is not allowed"):
        load_dataset(DatasetSpec("cifar10", str(tmp_path / "c")))
    assert not (tmp_path / "pwned").exists()


# ---- imagefolder ----

def test_imagefolder_loads_sorted_classes_and_pixels(tmp_path, rng):
    images = {
        ("train", "dog", "a.png"): rng.integers(0, 256, (5, 4, 3), dtype=np.uint8),
        ("train", "dog", "b.png"): rng.integers(0, 256, (5, 4, 3), dtype=np.uint8),
        ("train", "cat", "z.png"): rng.integers(0, 256, (5, 4, 3), dtype=np.uint8),
        ("test", "dog", "c.png"): rng.integers(0, 256, (5, 4, 3), dtype=np.uint8),
    }
    for parts, array in images.items():
        write_png(tmp_path.joinpath(*parts), array)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    data = load_dataset(DatasetSpec("imagefolder", str(tmp_path)))
    assert data.classes == ["cat", "dog"]
    assert data.input_shape == (3, 5, 4)
    assert data.train.y.tolist() == [0, 1, 1] and data.test.y.tolist() == [1]
    first = torch.from_numpy(images[("train", "cat", "z.png")]).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(data.train.x[0], first)
    assert data.train.ids.tolist() == ["0", "1", "2"]


def test_imagefolder_grayscale_joins_an_rgb_set_as_three_equal_channels(tmp_path, rng):
    write_png(tmp_path / "train/a/1.png", rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    gray = rng.integers(0, 256, (4, 4), dtype=np.uint8)
    write_png(tmp_path / "train/b/1.png", gray)
    write_png(tmp_path / "test/b/1.png", gray)
    data = load_dataset(DatasetSpec("imagefolder", str(tmp_path)))
    assert data.input_shape == (3, 4, 4)
    for c in range(3):
        torch.testing.assert_close(data.test.x[0, c], torch.from_numpy(gray).float() / 255)


def test_imagefolder_colour_image_in_a_grayscale_set_is_an_error(tmp_path, rng):
    write_png(tmp_path / "train/a/1.png", rng.integers(0, 256, (4, 4), dtype=np.uint8))
    write_png(tmp_path / "train/b/1.png", rng.integers(0, 256, (4, 4), dtype=np.uint8))
    write_png(tmp_path / "test/b/1.png", rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    with pytest.raises(DataError, match=r"test/b/1.png is a colour \(RGB\) image but the dataset is grayscale"):
        load_dataset(DatasetSpec("imagefolder", str(tmp_path)))


def test_imagefolder_images_of_different_sizes_are_an_error(tmp_path, rng):
    write_png(tmp_path / "train/a/1.png", rng.integers(0, 256, (4, 4), dtype=np.uint8))
    write_png(tmp_path / "train/b/1.png", rng.integers(0, 256, (4, 5), dtype=np.uint8))
    write_png(tmp_path / "test/a/1.png", rng.integers(0, 256, (4, 4), dtype=np.uint8))
    with pytest.raises(DataError, match=r"train/b/1.png is \(4, 5\)"):
        load_dataset(DatasetSpec("imagefolder", str(tmp_path)))


def test_imagefolder_test_class_missing_from_train_is_an_error(tmp_path, rng):
    for path in ("train/a/1.png", "train/b/1.png", "test/c/1.png"):
        write_png(tmp_path / path, rng.integers(0, 256, (4, 4), dtype=np.uint8))
    with pytest.raises(DataError, match=r"classes not in .*train: \['c'\]"):
        load_dataset(DatasetSpec("imagefolder", str(tmp_path)))


def test_imagefolder_missing_test_folder_names_it(tmp_path, rng):
    write_png(tmp_path / "train/a/1.png", rng.integers(0, 256, (4, 4), dtype=np.uint8))
    with pytest.raises(DataError, match="missing dataset folder .*test"):
        load_dataset(DatasetSpec("imagefolder", str(tmp_path)))


# ---- npz ----

def test_npz_channels_last_uint8_with_ids_and_classes(tmp_path, rng):
    x = rng.integers(0, 256, (6, 5, 4, 3), dtype=np.uint8)  # N, H, W, C
    ids = np.array(["img-a", "img-b", "img-c", "img-d", "img-e", "img-f"])
    write_npz(tmp_path / "train.npz", x=x, y=np.array([0, 1, 2, 0, 1, 2]), ids=ids, classes=np.array(["r", "g", "b"]))
    write_npz(tmp_path / "test.npz", x=x[:2], y=np.array([2, 1]))
    data = load_dataset(DatasetSpec("npz", str(tmp_path)))
    assert data.classes == ["r", "g", "b"] and data.input_shape == (3, 5, 4)
    torch.testing.assert_close(data.train.x, torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255)
    assert data.train.ids.tolist() == ids.tolist()
    assert data.test.ids.tolist() == ["0", "1"] and data.test.y.tolist() == [2, 1]


@pytest.mark.parametrize(
    ("shape", "to_nchw"),
    [
        ((4, 6, 5), lambda x: x[:, None]),  # N, H, W
        ((4, 1, 6, 5), lambda x: x),  # N, C, H, W
        ((4, 3, 6, 5), lambda x: x),
        ((4, 6, 5, 1), lambda x: x.transpose(0, 3, 1, 2)),  # N, H, W, C
    ],
)
def test_npz_float_layouts_become_nchw(tmp_path, rng, shape, to_nchw):
    x = rng.random(shape, dtype=np.float32)
    write_npz(tmp_path / "train.npz", x=x, y=np.array([0, 1, 0, 1]))
    write_npz(tmp_path / "test.npz", x=x, y=np.array([1, 1, 0, 0]))
    data = load_dataset(DatasetSpec("npz", str(tmp_path)))
    expected = torch.from_numpy(np.ascontiguousarray(to_nchw(x)))
    assert data.input_shape == tuple(expected.shape[1:])
    assert data.classes == ["0", "1"]
    torch.testing.assert_close(data.train.x, expected)


def test_npz_label_outside_classes_is_an_error(tmp_path, rng):
    x = rng.integers(0, 256, (3, 4, 4), dtype=np.uint8)
    write_npz(tmp_path / "train.npz", x=x, y=np.array([0, 1, 2]), classes=np.array(["a", "b"]))
    write_npz(tmp_path / "test.npz", x=x, y=np.array([0, 1, 1]))
    with pytest.raises(DataError, match=r"train labels must lie in \[0, 2\), found \[2\]"):
        load_dataset(DatasetSpec("npz", str(tmp_path)))


def test_npz_negative_label_is_an_error(tmp_path, rng):
    x = rng.integers(0, 256, (3, 4, 4), dtype=np.uint8)
    write_npz(tmp_path / "train.npz", x=x, y=np.array([0, 1, 1]))
    write_npz(tmp_path / "test.npz", x=x, y=np.array([0, -1, 1]))
    with pytest.raises(DataError, match=r"test labels must lie in \[0, 2\), found \[-1\]"):
        load_dataset(DatasetSpec("npz", str(tmp_path)))


def test_npz_float_pixels_outside_unit_range_are_an_error(tmp_path):
    x = np.full((2, 4, 4), 2.0, dtype=np.float32)
    write_npz(tmp_path / "train.npz", x=x, y=np.array([0, 1]))
    write_npz(tmp_path / "test.npz", x=x, y=np.array([0, 1]))
    with pytest.raises(DataError, match=r"train.npz \(x\): float images must lie in \[0, 1\]"):
        load_dataset(DatasetSpec("npz", str(tmp_path)))


def test_npz_duplicate_ids_are_named(tmp_path, rng):
    x = rng.integers(0, 256, (3, 4, 4), dtype=np.uint8)
    write_npz(tmp_path / "train.npz", x=x, y=np.array([0, 1, 1]), ids=np.array(["a", "b", "a"]))
    write_npz(tmp_path / "test.npz", x=x, y=np.array([0, 1, 1]))
    with pytest.raises(DataError, match=r"1 duplicate sample IDs, e.g. \['a'\]"):
        load_dataset(DatasetSpec("npz", str(tmp_path)))


def test_npz_missing_y_is_named(tmp_path, rng):
    x = rng.integers(0, 256, (3, 4, 4), dtype=np.uint8)
    write_npz(tmp_path / "train.npz", x=x)
    write_npz(tmp_path / "test.npz", x=x, y=np.array([0, 1, 1]))
    with pytest.raises(DataError, match=r"train.npz lacks array\(s\) \['y'\]"):
        load_dataset(DatasetSpec("npz", str(tmp_path)))


def test_missing_dataset_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="dataset folder .*nowhere does not exist"):
        load_dataset(DatasetSpec("npz", str(tmp_path / "nowhere")))


# ---- digits ----

def test_digits_split_sizes_and_determinism():
    data = load_dataset(DatasetSpec("digits", "", test_fraction=0.25, split_seed=3))
    assert len(data.train) + len(data.test) == 1797 and len(data.test) == 450
    assert data.input_shape == (1, 8, 8) and data.classes == [str(i) for i in range(10)]
    assert data.train.x.max() == 1.0 and data.train.x.min() == 0.0
    per_class = torch.bincount(data.train.y) + torch.bincount(data.test.y)
    assert (torch.bincount(data.test.y) - 0.25 * per_class).abs().max() <= 1  # stratified
    again = load_dataset(DatasetSpec("digits", "", test_fraction=0.25, split_seed=3))
    other = load_dataset(DatasetSpec("digits", "", test_fraction=0.25, split_seed=4))
    assert torch.equal(again.train.x, data.train.x)
    assert not torch.equal(other.train.x, data.train.x)


@pytest.mark.parametrize("fraction, held_out", [(0.001, 2), (0.999, 1796)])
def test_digits_split_that_leaves_a_class_out_of_one_side_names_the_usable_range(fraction, held_out):
    # scikit-learn's own error would only say "should be greater or equal to the number of classes"
    with pytest.raises(DataError) as caught:
        load_dataset(DatasetSpec("digits", "", test_fraction=fraction))
    message = str(caught.value)
    assert f"holds out {held_out} of the 1797 samples" in message
    assert "each of the 10 classes on both sides" in message and "from 0.0051 to 0.9944" in message


@pytest.mark.parametrize("fraction", [0.0051, 0.9944])
def test_digits_split_at_either_end_of_the_named_range_loads(fraction):
    data = load_dataset(DatasetSpec("digits", "", test_fraction=fraction))
    assert len(torch.unique(data.train.y)) == len(torch.unique(data.test.y)) == 10


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_digits_split_seed_outside_numpys_range_is_a_spec_error(seed):
    with pytest.raises(SpecError, match=r"split_seed must lie in \[0, 2\*\*32 - 1\]"):
        DatasetSpec("digits", "", split_seed=seed)


# ---- ID files ----

def test_id_file_round_trips(tmp_path):
    ids = ["a", "patient-7/scan 2", "ünïcode", "form\x0cfeed", "42"]
    write_id_file(tmp_path / "ids.txt", ids)
    back = read_id_file(tmp_path / "ids.txt")
    assert back.tolist() == ids and back.dtype.kind == "U"


def test_write_id_file_refuses_ids_that_would_not_read_back(tmp_path):
    with pytest.raises(DataError, match="line breaks"):
        write_id_file(tmp_path / "ids.txt", ["a", "b\nc"])


def test_read_id_file_missing_is_named(tmp_path):
    with pytest.raises(DataError, match="ID file .*absent.txt does not exist"):
        read_id_file(tmp_path / "absent.txt")


def test_read_id_file_empty_line_is_an_error(tmp_path):
    (tmp_path / "ids.txt").write_text("a\n\nb\n")
    with pytest.raises(DataError, match=r"empty lines, e.g. line\(s\) \[2\]"):
        read_id_file(tmp_path / "ids.txt")


def _tiny_npz(root: Path, n: int = 4) -> None:
    x = np.zeros((n, 4, 4), dtype=np.uint8)
    write_npz(root / "train.npz", x=x, y=np.arange(n) % 2, ids=np.array([f"npz{i}" for i in range(n)]))
    write_npz(root / "test.npz", x=x[:2], y=np.array([0, 1]))


def test_id_file_sets_train_ids_over_npz_ids(tmp_path):
    _tiny_npz(tmp_path / "d")
    write_id_file(tmp_path / "ids.txt", ["w", "x", "y", "z"])
    data = load_dataset(DatasetSpec("npz", str(tmp_path / "d"), id_file=str(tmp_path / "ids.txt")))
    assert data.train.ids.tolist() == ["w", "x", "y", "z"]
    assert data.test.ids.tolist() == ["0", "1"]


def test_id_file_with_wrong_count_is_an_error(tmp_path):
    _tiny_npz(tmp_path / "d")
    write_id_file(tmp_path / "ids.txt", ["w", "x", "y"])
    with pytest.raises(DataError, match="ids.txt: 3 IDs for 4 training samples"):
        load_dataset(DatasetSpec("npz", str(tmp_path / "d"), id_file=str(tmp_path / "ids.txt")))


def test_id_file_duplicates_are_named(tmp_path):
    _tiny_npz(tmp_path / "d")
    write_id_file(tmp_path / "ids.txt", ["w", "x", "w", "x"])
    with pytest.raises(DataError, match=r"ids.txt: 2 duplicate sample IDs, e.g. \['w', 'x'\]"):
        load_dataset(DatasetSpec("npz", str(tmp_path / "d"), id_file=str(tmp_path / "ids.txt")))


# ---- stratified_subset ----

def _imageset(labels: list[int]) -> ImageSet:
    n = len(labels)
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1)  # x encodes the position, to check alignment
    return ImageSet(x, torch.tensor(labels), np.array([f"s{i}" for i in range(n)]))


def test_stratified_subset_is_balanced_and_keeps_ids_aligned():
    data = _imageset([0] * 30 + [1] * 20 + [2] * 10)
    sub = stratified_subset(data, 14, seed=0)
    assert len(sub) == 14
    counts = torch.bincount(sub.y, minlength=3).tolist()
    assert sorted(counts) == [4, 5, 5]
    positions = sub.x.flatten().long()
    assert sub.ids.tolist() == [f"s{p}" for p in positions.tolist()]
    assert torch.equal(sub.y, data.y[positions])
    assert positions.tolist() == sorted(positions.tolist())


def test_stratified_subset_takes_all_of_a_small_class_and_fills_from_the_rest():
    data = _imageset([0] * 30 + [1] * 20 + [2] * 2)
    sub = stratified_subset(data, 20, seed=1)
    assert torch.bincount(sub.y, minlength=3).tolist() == [9, 9, 2]


def test_stratified_subset_is_deterministic_in_seed():
    data = _imageset([i % 4 for i in range(200)])
    a, b, c = (stratified_subset(data, 40, seed=s) for s in (5, 5, 6))
    assert a.ids.tolist() == b.ids.tolist()
    assert a.ids.tolist() != c.ids.tolist()
    assert torch.bincount(a.y).tolist() == [10, 10, 10, 10]


def test_stratified_subset_larger_than_the_set_is_an_error():
    with pytest.raises(DataError, match=r"n must lie in \[0, 3\]"):
        stratified_subset(_imageset([0, 1, 1]), 4, seed=0)
