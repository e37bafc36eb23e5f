import json

import pytest
import torch

from unlearning.bench import loop as loop_bench
from unlearning.bench.profiles import SMOKE


def test_measure_times_fit_and_the_bare_loop_over_the_same_samples():
    result = loop_bench.measure(SMOKE, torch.device("cpu"), rounds=2, train_size=128)
    assert result["device"] == "cpu" and result["train_samples"] == 128
    assert len(result["per_round"]["fit"]) == len(result["per_round"]["bare"]) == 2
    assert result["fit_samples_per_s"] > 0 and result["bare_samples_per_s"] > 0
    assert result["ratio"] == round(result["fit_samples_per_s"] / result["bare_samples_per_s"], 3)


def test_the_command_writes_its_result_and_refuses_bad_rounds(tmp_path, capsys):
    out = tmp_path / "loop.json"
    assert loop_bench.main(["--profile", "smoke", "--device", "cpu", "--rounds", "1", "--train-size", "64",
                            "--out", str(out)]) == 0
    assert json.loads(out.read_text())["rounds"] == 1
    with pytest.raises(SystemExit) as exc:
        loop_bench.main(["--profile", "smoke", "--rounds", "0"])
    assert exc.value.code == 2
    assert "--rounds and --epochs must be at least 1" in capsys.readouterr().err
