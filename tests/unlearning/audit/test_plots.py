"""Confidence histograms as PNG files and bytes."""

import numpy as np
import pytest

from unlearning.audit.plots import confidence_histograms, confidence_histograms_png

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _panels() -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return {
        model: {
            "remaining": rng.beta(8, 1, size=300),
            "forget": rng.beta(a, 1, size=100),
            "test": rng.beta(3, 1, size=200),
        }
        for model, a in (("original", 8), ("retrain", 3), ("amun", 3.5))
    }


def test_writes_a_png_of_sane_size_and_returns_its_path(tmp_path):
    path = confidence_histograms(_panels(), tmp_path / "conf.png", title="forget 10%")
    assert path == tmp_path / "conf.png"
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert 5_000 < len(data) < 2_000_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 2 * height  # three panels side by side


def test_png_bytes_start_with_the_png_magic():
    assert confidence_histograms_png(_panels()).startswith(PNG_MAGIC)


def test_confidences_outside_unit_interval_are_rejected():
    with pytest.raises(ValueError, match="panel 'amun', set 'forget'"):
        confidence_histograms_png({"amun": {"forget": np.array([0.2, 1.2])}})
