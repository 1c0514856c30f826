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


def test_a_run_grows_a_third_guide_channel_and_trains_it_on_unblended_crops(tmp_path):
    train(_config(tmp_path, 3))
    cfg = _config(tmp_path, 6).updated({"init": str(tmp_path / "w" / "best.safetensors"), "out": str(tmp_path / "g3"),
                                        "export": str(tmp_path / "g" / "best.safetensors"), "unblended": 1.0,
                                        "net": {"guide_channels": 3}})
    train(cfg)
    ckpt = torch.load(tmp_path / "g3" / "last.pt", weights_only=True)
    head = ckpt["model"]["head.weight"]
    assert ckpt["step"] == 6 and head.shape[1] == 3 + 3
    assert head[:, 5].abs().sum() > 0  # started at zero: the unblended crops' inverted matte taught it
    # A 2-channel model takes them blind (the refit's network pass) and trains.
    train(_config(tmp_path, 2).updated({"out": str(tmp_path / "g2"), "unblended": 0.5}))
    assert torch.load(tmp_path / "g2" / "last.pt", weights_only=True)["step"] == 2


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


def test_the_l2_pixel_loss_aims_at_the_mean_where_l1_aims_at_the_median():
    # Under an opaque stamp the picture is uncertain: say two ways in three it was dark, one light.
    # PSNR rewards the mean of the possibilities; L1's best guess is their median.
    from desample.train.loop import pixel_loss

    truths = torch.tensor([0.0, 0.0, 0.9])
    weight = torch.ones(3)
    guesses = torch.linspace(0, 1, 101)
    best = {kind: guesses[int(torch.stack([pixel_loss(g - truths, weight, kind) for g in guesses]).argmin())].item()
            for kind in ("l1", "l2")}
    assert best["l1"] == pytest.approx(0.0) and best["l2"] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="pixel_loss"):
        TrainConfig().updated({"pixel_loss": "l3"})


def test_the_edge_loss_sees_a_blurred_stroke_but_not_a_brightness_offset():
    from desample.train.loop import edge_loss

    truth = torch.zeros(1, 3, 8, 8)
    truth[..., 3:5] = 1.0  # a vertical stroke, 2 px wide
    blurred = torch.nn.functional.avg_pool2d(truth, (1, 3), stride=1, padding=(0, 1), count_include_pad=False)
    weight = torch.ones(1, 1, 8, 8)
    assert edge_loss((truth + 0.1) - truth, weight).item() == pytest.approx(0.0, abs=1e-7)
    assert edge_loss(blurred - truth, weight).item() > 0.05
    # Only where weighted: the stroke's columns at weight 0 and the rest of the picture is flat.
    assert edge_loss(blurred - truth, torch.zeros(1, 1, 8, 8)).item() == 0.0


def test_a_changed_validation_set_is_scored_again_before_weights_are_replaced(tmp_path, capsys):
    """Checkpoints from an older stamp synthesis carry a `best` measured on other validation stamps:
    the best weights are measured again on today's set, so worse weights cannot replace them."""
    import re
    import shutil

    from desample.data.validation import build_validation_set
    from desample.stamps.synthesis import SYNTHESIS_VERSION
    from desample.train.loop import validation_pictures
    from desample.train.validation import evaluate

    train(_config(tmp_path, 3))
    run = tmp_path / "run"
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["synthesis"] == SYNTHESIS_VERSION
    ckpt["synthesis"] = SYNTHESIS_VERSION - 1
    ckpt["best"] = 1e9  # as if measured on easier stamps: it would block every export
    torch.save(ckpt, run / "last.pt")
    shutil.copy(run / "best.safetensors", tmp_path / "before.safetensors")
    capsys.readouterr()

    train(_config(tmp_path, 6))
    said = capsys.readouterr().out
    score = float(re.search(r"validation set changed .* scores ([0-9.]+) on it", said).group(1))
    cfg = _config(tmp_path, 6)
    val_set = build_validation_set(validation_pictures(None, cfg), lr_long=cfg.val_size)  # procedural, val_max=1
    expected = evaluate(load_weights(tmp_path / "before.safetensors").eval(), val_set)["psnr"]
    assert abs(score - expected) < 1e-3
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["synthesis"] == SYNTHESIS_VERSION and ckpt["best"] < 1e9
    assert ckpt["best"] >= score - 1e-3


def test_learning_rate_decays_by_absolute_step():
    from desample.train.loop import scheduled_lr

    cfg = TrainConfig(data=[], lr=2e-4, decay_from=100, decay_to=300, lr_min=1e-5)
    assert scheduled_lr(cfg, 0) == scheduled_lr(cfg, 100) == 2e-4
    assert abs(scheduled_lr(cfg, 200) - (1e-5 + 2e-4) / 2) < 1e-12  # half way down the cosine
    assert scheduled_lr(cfg, 300) == scheduled_lr(cfg, 10_000) == 1e-5
    rates = [scheduled_lr(cfg, s) for s in range(100, 301, 10)]
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False))
    assert scheduled_lr(TrainConfig(data=[], lr=2e-4), 10**6) == 2e-4  # no decay asked: constant


@pytest.mark.filterwarnings("ignore:Detected call of")  # the scheduler alone, as hivemind catches it up
def test_the_swarm_follows_the_decay_by_swarm_step():
    from desample.train.loop import scheduled_lr
    from desample.train.swarm import lr_schedule

    cfg = TrainConfig(data=[], lr=2e-4, decay_from=100, decay_to=300, lr_min=1e-5)
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    scheduler = lr_schedule(cfg)(opt)
    for swarm_step in (0, 150, 200, 400):  # as hivemind catches a (late-joining) peer up to the swarm's step
        while scheduler._step_count <= swarm_step:
            scheduler.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(scheduled_lr(cfg, swarm_step))
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-5)


def test_a_resumed_run_carries_on_down_the_decay(tmp_path):
    cfg = _config(tmp_path, 4)
    cfg.decay_from, cfg.decay_to, cfg.lr_min, cfg.warmup = 0, 6, 1e-5, 0
    train(cfg)
    cfg.steps = 6
    train(cfg)
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ckpt["step"] == 6
    from desample.train.loop import scheduled_lr

    assert ckpt["opt"]["param_groups"][0]["lr"] == scheduled_lr(cfg, 5)  # the last step's rate, not the start's



def test_weight_averaging_keeps_the_mean_of_snapshots_across_a_resume(tmp_path):
    from desample.train.log import read_log

    cfg = _config(tmp_path, 4).updated({"swa_from": 2, "swa_every": 2, "ckpt_every": 2, "val_every": 2})
    train(cfg)  # snapshots at steps 2 and 4
    ckpt4 = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ckpt4["swa_n"] == 2
    train(cfg.updated({"steps": 6}))  # resumes: the third snapshot, at step 6
    ckpt6 = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ckpt6["swa_n"] == 3
    for k, v in ckpt6["swa"].items():  # the running mean of 3 = (2 * mean of 2 + raw weights at 6) / 3
        assert torch.allclose(v, (2 * ckpt4["swa"][k] + ckpt6["model"][k]) / 3, atol=1e-6), k
    assert any(not torch.equal(ckpt6["swa"][k], ckpt6["ema"][k]) for k in ckpt6["swa"])
    _, val = read_log(tmp_path / "run")
    assert [(r["step"], r.get("swa_n")) for r in val] == [(2, 1), (4, 2), (6, 3)]
    assert all("psnr" in r["val_swa"] for r in val)
    meta = json.loads((tmp_path / "w" / "best.json").read_text())
    assert meta["weights"] == "ema" or meta["weights"].startswith("mean of")


def test_bf16_is_chosen_by_the_cpu_flags():
    from desample.train.precision import cpu_has_native_bf16, use_bf16

    assert cpu_has_native_bf16("processor : 0\nflags : fpu sse avx2 avx512f amx_bf16 amx_tile\n")
    assert cpu_has_native_bf16("flags\t\t: avx512f avx512_bf16\n")
    assert not cpu_has_native_bf16("flags : fpu sse avx avx2 fma\n")
    assert not cpu_has_native_bf16("")
    assert use_bf16("bf16") and not use_bf16("fp32")
    with pytest.raises(ValueError, match="precision"):
        use_bf16("fp16")


def test_a_bf16_step_follows_the_fp32_one():
    """The trunk in bf16, the heads and blend in fp32: same loss and gradient direction as fp32."""
    import copy

    import numpy as np

    from desample.data.pairs import CropSampler
    from desample.data.procedural import anime_picture
    from desample.model.net import DesampleNet, NetConfig
    from desample.train.loop import losses
    from desample.train.precision import autocast

    torch.manual_seed(0)
    model = DesampleNet(NetConfig(widths=(8, 8, 12, 16), blocks=(1, 1, 1, 1), sr_width=8))
    for p in model.parameters():  # a trained-looking net: the zero-initialised heads would give zero gradients
        p.data.add_(0.05 * torch.randn_like(p))
    twin = copy.deepcopy(model).to(memory_format=torch.channels_last)
    sampler = CropSampler([anime_picture(160, 160, seed=i) for i in range(3)], np.random.default_rng(0), pool_size=3)
    batch = {k: torch.from_numpy(v) for k, v in sampler.batch(4, 32).items()}
    cfg = TrainConfig()
    results = []
    for net, bf16 in ((model, False), (twin, True)):
        with autocast(bf16):
            out = net(batch["x"].contiguous(memory_format=torch.channels_last) if bf16 else batch["x"], batch["guide"])
        assert out.sr.dtype == out.lr.dtype == out.mask_logits.dtype == torch.float32
        loss = losses(out, batch, cfg, 2)["loss"]
        loss.backward()
        results.append((loss.item(), torch.cat([p.grad.flatten() for p in net.parameters()])))
    (l32, g32), (l16, g16) = results
    assert abs(l16 - l32) < 0.01 * l32
    assert torch.nn.functional.cosine_similarity(g32, g16, dim=0) > 0.98


def test_crops_with_the_mask_unsupervised_leave_the_mask_loss_alone():
    """Crops given blind after an imperfect inversion (mask_weight 0): whatever the network marks
    there, the mask's BCE and Dice do not move; the picture's loss still counts."""
    import numpy as np

    from desample.data.pairs import CropSampler
    from desample.data.procedural import anime_picture
    from desample.model.net import DesampleNet, NetConfig
    from desample.train.loop import losses

    torch.manual_seed(0)
    model = DesampleNet(NetConfig(widths=(8, 8, 12, 16), blocks=(1, 1, 1, 1), sr_width=8))
    sampler = CropSampler([anime_picture(160, 160, seed=i) for i in range(3)], np.random.default_rng(0), pool_size=3,
                          unstamped=0.0, stamp_crops=1.0, unblended=1.0)
    batch = {k: torch.from_numpy(v) for k, v in sampler.batch(4, 32).items()}
    assert (batch["mask_weight"] == 0).all() and batch["mask"].sum() > 0
    out = model(batch["x"], batch["guide"])
    parts = losses(out, batch, TrainConfig(), 2)
    assert parts["bce"].item() == 0 and parts["dice"].item() == 0 and parts["l1_hr"].item() > 0
    batch["mask_weight"] = torch.ones_like(batch["mask_weight"])  # the same crops supervised: the mask counts
    parts = losses(out, batch, TrainConfig(), 2)
    assert parts["bce"].item() > 0 and parts["dice"].item() > 0


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
