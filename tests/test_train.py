import json

import pytest
import torch

from desample.model.weights import load_weights
from desample.train.config import TrainConfig
from desample.train.loop import train


def _config(tmp_path, steps):
    return TrainConfig(
        data=[], procedural=3, out=str(tmp_path / "run"), export=str(tmp_path / "w" / "best.safetensors"),
        steps=steps, batch=2, patch=32, pool=3, refresh=1, val_every=3, ckpt_every=3, threads=1, val_max=1,
        val_size=96, net={"widths": [8, 8, 12, 16], "blocks": [1, 1, 1, 1], "sr_width": 8},
    )


def test_train_validates_exports_and_resumes(tmp_path):
    train(_config(tmp_path, 3))
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ckpt["step"] == 3
    meta = json.loads((tmp_path / "w" / "best.json").read_text())
    for key in ("psnr", "psnr_y", "ssim", "psnr_in", "psnr_out", "mask_iou", "bicubic_psnr"):
        assert key in meta["val"]
    model = load_weights(tmp_path / "w" / "best.safetensors")
    assert model.config.widths == (8, 8, 12, 16)
    first = {k: v.clone() for k, v in ckpt["model"].items()}

    train(_config(tmp_path, 5))  # resumes at step 3, runs 2 more
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ckpt["step"] == 5 and ckpt["samples"] == 10
    assert any(not torch.equal(first[k], ckpt["model"][k]) for k in first)
    assert (tmp_path / "run" / "train_config.json").exists()
    from desample.train.log import curves, read_log, validation_table

    losses, val = read_log(tmp_path / "run")
    assert [r["step"] for r in val] == [3, 5]  # every val_every steps and at the end, across the resume
    assert "| 5 |" in validation_table(val)
    curves(losses, val, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_a_run_from_weights_can_grow_them(tmp_path):
    train(_config(tmp_path, 3))
    cfg = _config(tmp_path, 6).updated({"init": str(tmp_path / "w" / "best.safetensors"), "out": str(tmp_path / "grown"),
                                        "export": str(tmp_path / "g" / "best.safetensors"), "net": {"sr_blocks": 2}})
    train(cfg)
    ckpt = torch.load(tmp_path / "grown" / "last.pt", weights_only=True)
    assert ckpt["step"] == 6  # carried on from the init's 3 steps
    assert "sr_body.1.conv2.weight" in ckpt["model"]
    assert list(ckpt["net_config"]["widths"]) == [8, 8, 12, 16] and ckpt["net_config"]["sr_blocks"] == 2


def test_config_file_and_unknown_options(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('steps = 7\nlr = 0.001\ndata = ["x"]\n')
    cfg = TrainConfig.from_file(f)
    assert cfg.steps == 7 and cfg.lr == 0.001 and cfg.data == ["x"]
    try:
        cfg.updated({"stepz": 1})
    except ValueError as e:
        assert "stepz" in str(e)
    else:
        raise AssertionError("an unknown option was accepted")
    # a removed option: accepted switched off (old run configs name it), refused switched on
    assert cfg.updated({"edge_loss": 0.0, "unblended": 0, "pixel_loss": "l1"}) == cfg
    with pytest.raises(ValueError, match="edge_loss was removed"):
        cfg.updated({"edge_loss": 0.5})


def test_a_bf16_run_saves_plain_weights(tmp_path):
    cfg = _config(tmp_path, 3).updated({"precision": "bf16", "swa_from": 1, "swa_every": 1})
    train(cfg)
    model = load_weights(tmp_path / "w" / "best.safetensors")  # fp16 safetensors need contiguous tensors
    assert all(p.is_contiguous() for p in model.parameters())
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ckpt["step"] == 3 and ckpt["train_config"]["precision"] == "bf16"


def test_a_best_measured_on_other_validation_previews_is_not_trusted():
    from desample.stamps.synthesis import SYNTHESIS_VERSION
    from desample.train.loop import _same_validation

    cfg = TrainConfig(data=[])
    assert _same_validation({"synthesis": SYNTHESIS_VERSION}, {}, cfg)  # saved before val_size existed: 330
    assert not _same_validation({"synthesis": SYNTHESIS_VERSION}, {"val_size": 96}, cfg)
    assert not _same_validation({"synthesis": SYNTHESIS_VERSION - 1}, {"val_size": 330}, cfg)


def test_the_scorer_scores_bicubic_once_and_as_evaluate_does(monkeypatch):
    from desample.data.procedural import anime_picture
    from desample.data.validation import build_validation_set
    from desample.model.net import DesampleNet
    from desample.train import validation
    from desample.train.validation import Scorer, evaluate

    from .conftest import TINY, randomised

    previews = build_validation_set([anime_picture(120, 90, seed=1)], lr_long=48)  # previews of 48 px, not 330
    assert [pv.stamped.shape[:2] for pv in previews] == [(36, 48)] * 2 and previews[0].hr.shape[:2] == (72, 96)
    model = randomised(DesampleNet(TINY))
    expected = evaluate(model, previews)
    calls, baseline = [], validation.baseline_metrics
    monkeypatch.setattr(validation, "baseline_metrics", lambda *a: calls.append(a) or baseline(*a))
    score = Scorer(previews)
    assert score(model) == expected and score(model) == expected  # bicubic scored once, for both
    assert len(calls) == 1


def test_mode_consistency_trains_the_gap_between_blind_and_told_nothing_away_from_the_stamp():
    from desample.model.net import DesampleNet, NetConfig
    from desample.train.loop import forward_losses

    torch.manual_seed(0)
    model = DesampleNet(NetConfig(widths=(8, 8, 12, 16), blocks=(1, 1, 1, 1), sr_width=8))
    for p in model.parameters():  # an untrained net's outputs ignore the guide: make them depend on it
        torch.nn.init.normal_(p, std=0.1)
    b, p = 6, 32
    mask = torch.zeros(b, 1, p, p)
    mask[:, :, 8:12, 8:24] = 1
    guide = torch.zeros(b, 2, p, p)
    guide[1, 1] = 1.0  # the second crop is told "no stamp" already: nothing to compare
    batch = {"x": torch.rand(b, 3, p, p), "guide": guide, "mask": mask, "alpha": mask * 0.6, "color": torch.ones(b, 3, p, p),
             "lr": torch.rand(b, 3, p, p), "hr": torch.rand(b, 3, 2 * p, 2 * p)}
    off = forward_losses(model, batch, TrainConfig(mode_consistency=0.0), 2)
    on = forward_losses(model, batch, TrainConfig(mode_consistency=1.0), 2)
    assert "mode" not in off and on["mode"] > 0
    assert torch.isclose(on["l1_hr"], off["l1_hr"]) and torch.isclose(on["loss"], off["loss"] + on["mode"])

    # By hand, on the first third of the batch (crops 0 and 1; crop 1 was not blind): crop 0's
    # |blind - told nothing| away from its stamp (the mask grown by 8 px).
    with torch.no_grad():
        nothing = torch.zeros_like(guide)
        nothing[:, 1] = 1.0
        gap = (model(batch["x"], guide).sr - model(batch["x"], nothing).sr).abs()[0]
    away = torch.ones(2 * p, 2 * p, dtype=torch.bool)
    away[0:40, 0:64] = False  # rows 8-12 and columns 8-24 grown by 8, at 2x (clipped at 0 and at the crop's edge)
    assert torch.isclose(on["mode"], gap[:, away].mean(), rtol=1e-4)

    # Both sides carry gradient, down to the flag's own weights (what tells the modes apart).
    model.zero_grad()
    on["mode"].backward()
    assert model.head.weight.grad[:, 4].abs().sum() > 0
