import io

import pytest
import torch

from unlearning.models import (
    CheckpointError,
    build_model,
    check_state_fits,
    checkpoint_bytes,
    load_checkpoint,
    load_state_strict,
    read_weights,
)
from unlearning.specs import ArchSpec, TrainConfig, from_dict, to_dict


@pytest.mark.parametrize("spec", [
    ArchSpec("small_cnn", 10, 1, 28, width=4),
    ArchSpec("resnet18_cifar", 3, 3, 16, width=4),
    ArchSpec("torchvision", 4, 1, 32, torchvision_name="resnet18"),
])
def test_checkpoint_saved_with_its_spec_rebuilds_the_same_outputs(spec, tmp_path):
    torch.manual_seed(0)
    model = build_model(spec).eval()
    x = torch.rand(3, spec.in_channels, spec.image_size, spec.image_size)
    cfg = TrainConfig(epochs=3)
    path = tmp_path / "m.safetensors"
    path.write_bytes(checkpoint_bytes(model, cfg, {"note": "x"}))
    ck = load_checkpoint(path)
    assert ck.spec == spec
    assert from_dict(TrainConfig, ck.config) == cfg and ck.extra == {"note": "x"}
    assert torch.equal(ck.model.eval()(x), model(x))


def test_weights_of_another_architecture_are_refused_with_the_mismatch_named():
    small = build_model(ArchSpec("small_cnn", 10, 1, 28, width=4))
    wide = build_model(ArchSpec("small_cnn", 10, 1, 28, width=8))
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_state_strict(small, wide.state_dict())
    state = dict(small.state_dict())
    state.pop(next(iter(state)))
    with pytest.raises(CheckpointError, match="missing 1 tensors"):
        load_state_strict(small, state)


def test_weights_are_checked_against_an_architecture_on_the_meta_device():
    with torch.device("meta"):
        huge = build_model(ArchSpec("small_cnn", 10, 1, 28, width=10**6))  # 3e14 bytes if it were real
    small = build_model(ArchSpec("small_cnn", 10, 1, 28, width=4))
    with pytest.raises(CheckpointError, match=r"\(4, 1, 3, 3\) != \(1000000, 1, 3, 3\)"):
        check_state_fits(huge, small.state_dict())
    check_state_fits(small.to("meta"), small.state_dict())


def test_plain_state_dict_loads_and_a_pickle_needing_full_unpickling_is_refused():
    model = build_model(ArchSpec("small_cnn", 10, 1, 28, width=4))
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    assert set(read_weights(buf.getvalue())) == set(model.state_dict())
    buf = io.BytesIO()
    torch.save(model, buf)  # a whole module: needs weights_only=False
    with pytest.raises(CheckpointError, match="weights_only=False"):
        read_weights(buf.getvalue())
    with pytest.raises(CheckpointError):
        read_weights(b"not a model at all")


def test_spec_round_trips_through_json_and_rejects_unknown_fields():
    spec = ArchSpec("resnet18_cifar", 10, 3, 32)
    assert from_dict(ArchSpec, to_dict(spec)) == spec
    with pytest.raises(ValueError, match="no field"):
        from_dict(ArchSpec, {**to_dict(spec), "depth": 50})
    with pytest.raises(ValueError, match="not one of"):
        ArchSpec("vgg", 10, 3, 32)
