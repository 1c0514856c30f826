"""`desample average`: the mean of weights, scored on training's validation set."""

import dataclasses
import json

import pytest
import torch

from desample.cli import main
from desample.model.net import DesampleNet
from desample.model.weights import average_weights, load_weights, save_weights

from .conftest import TINY, randomised


def _weights(tmp_path, name, seed, config=TINY, step=0):
    path = tmp_path / f"{name}.safetensors"
    save_weights(randomised(DesampleNet(config), seed), path, {"step": step, "train_seconds": 10.0 * step})
    return path


def test_the_mean_is_taken_parameter_by_parameter(tmp_path):
    a, b, c = (_weights(tmp_path, n, s) for n, s in (("a", 1), ("b", 2), ("c", 3)))
    mean = average_weights([a, b, c]).state_dict()
    each = [load_weights(p).state_dict() for p in (a, b, c)]
    assert not torch.equal(each[0]["mask_head.weight"], each[1]["mask_head.weight"])
    for k, v in mean.items():
        torch.testing.assert_close(v, (each[0][k] + each[1][k] + each[2][k]) / 3)


def test_weights_of_another_architecture_are_refused(tmp_path):
    a = _weights(tmp_path, "a", 1)
    b = _weights(tmp_path, "b", 2, config=dataclasses.replace(TINY, sr_width=TINY.sr_width * 2))
    with pytest.raises(ValueError, match="another architecture"):
        average_weights([a, b])


def test_average_command_scores_the_mean_and_each_input(tmp_path, capsys):
    a, b = _weights(tmp_path, "a", 1, step=100), _weights(tmp_path, "b", 2, step=300)
    out = tmp_path / "soup.safetensors"
    # no --data: procedural validation pictures (one, two previews: the metrics' cost is the test's time)
    assert main(["average", str(a), str(b), "-o", str(out), "--val-max", "1"]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["step"] == 300 and meta["train_seconds"] == 3000.0  # the newest input's record
    assert [s["step"] for s in meta["averaged_from"]] == [100, 300]
    assert meta["val_previews"] == 2 and meta["val"]["psnr"] > 0
    assert all(s["val_psnr"] != meta["val"]["psnr"] for s in meta["averaged_from"])
    assert "mean of 2: PSNR" in capsys.readouterr().out
    torch.testing.assert_close(load_weights(out).state_dict()["mask_head.weight"],
                               average_weights([a, b]).state_dict()["mask_head.weight"].half().float())
