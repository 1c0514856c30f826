import json

import numpy as np
import pytest
from PIL import Image

from desample.cli import main


def test_tiny_bench_end_to_end(tiny_weights, tmp_path):
    out = tmp_path / "bench"
    code = main(["bench", "--methods", "bicubic", "--limit", "2", "--out", str(out), "--model", tiny_weights, "--threads", "1",
                 "--no-memory"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["n_cases"] == 4  # 2 pictures x 2 stamp kinds
    s = results["summary"]["bicubic"]
    # Bicubic of a stamped picture: worse inside the stamp than outside, and a finite speed.
    assert s["psnr_in"] < s["psnr_out"]
    assert 10 < s["psnr"] < 50 and s["out_mpix_per_s"] > 0
    assert 0 < s["delta_e"] < 30  # a stamp shifts colours: never zero, not absurd
    report = (out / "report.md").read_text()
    assert "| bicubic | stamped |" in report and "ΔE00" in report
    assert Image.open(out / "crops.png").width > 100
    assert (out / "speed_quality.png").exists()


def test_bench_at_4x_scores_4x_outputs_against_a_4x_truth(tiny_weights, tmp_path):
    out = tmp_path / "bench4"
    code = main(["bench", "--scale", "4", "--methods", "bicubic", "desample", "--limit", "1", "--kinds-per-picture", "1",
                 "--out", str(out), "--model", tiny_weights, "--threads", "1", "--no-memory"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["scale"] == 4 and results["n_cases"] == 1
    rows = {r["method"]: r for r in results["cases"]}
    # 233x330 previews of 932x1320 procedural pictures: the output has 16x the input's pixels.
    for row in rows.values():
        assert row["out_mpix_per_s"] * row["seconds"] == pytest.approx(932 * 1320 / 1e6)
    assert 15 < rows["bicubic"]["psnr"] < 50  # scored against its own 4x truth, not a misaligned one
    assert "1 stamped previews, 4x" in (out / "report.md").read_text()
    assert Image.open(out / "crops.png").width > 100


def test_each_method_is_released_once_it_has_run_every_case():
    # A peer's model at 4x holds GBs: the bench drops it before the next method loads its own.
    from desample.bench.methods import Method
    from desample.bench.run import build_cases, run_bench
    from desample.model.net import bicubic

    cases = build_cases(None, 1, 2)
    log = []

    def make(name):
        def run(c):
            log.append(("run", name))
            return bicubic(c.stamped, 2)

        return Method(name, run, "stamped", release=lambda: log.append(("release", name)))

    run_bench(cases, [make("a"), make("b")], None, threads=1, memory=False, log=lambda *_: None)
    # a: warm-up + 2 cases, then released before b starts.
    assert log == [("run", "a")] * 3 + [("release", "a")] + [("run", "b")] * 3 + [("release", "b")]


def test_a_picture_folder_gets_no_crops_unless_asked(tiny_weights, tmp_path):
    from desample.data.procedural import anime_picture

    folder = tmp_path / "pictures"
    folder.mkdir()
    for i in range(12):  # some of them land in the validation split
        anime_picture(200, 160, seed=i).save(folder / f"p{i}.png")
    args = ["bench", "--images", str(folder), "--all", "--methods", "bicubic", "--limit", "1", "--model", tiny_weights,
            "--threads", "1", "--no-memory"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / "report.md").exists() and not (tmp_path / "a" / "crops.png").exists()
    assert main([*args, "--out", str(tmp_path / "b"), "--crops"]) == 0
    assert (tmp_path / "b" / "crops.png").exists()


def test_unknown_method_is_a_clear_error(tiny_weights, tmp_path, capsys):
    assert main(["bench", "--methods", "nope", "--limit", "1", "--out", str(tmp_path), "--model", tiny_weights, "--no-memory"]) == 2
    assert "unknown or unavailable" in capsys.readouterr().err


class _BrightDetector:
    """An engine whose stamp probability is 1 wherever the picture is bright, 0 elsewhere."""

    scale, multiple, border, guide_channels = 2, 1, 0, 2

    def __call__(self, x, guide):
        n, _, h, w = x.shape
        prob = (x.mean(axis=1, keepdims=True) > 0.5).astype(np.float32)
        return np.zeros((n, 3, 2 * h, 2 * w), np.float32), x, prob, np.zeros_like(prob)


def test_detector_scores_per_stamp_kind():
    from types import SimpleNamespace

    from desample.bench.run import detector_scores

    def case(kind, bright, stamped_mask):
        rgb = np.zeros((40, 40, 3), np.float32)
        rgb[bright] = 1.0
        mask = np.zeros((40, 40), bool)
        mask[stamped_mask] = True
        return SimpleNamespace(kind=kind, stamped=rgb, mask=mask)

    found_all = case("word", np.s_[10:20, 10:30], np.s_[10:20, 10:30])  # IoU 1
    found_half = case("tiled", np.s_[0:10, 0:20], np.s_[0:10, 10:30])  # 100 px shared of 300: IoU 1/3
    scores = detector_scores([found_all, found_half], _BrightDetector())
    assert scores["iou_by_kind"] == pytest.approx({"tiled": 1 / 3, "word": 1.0})
    assert scores["mask_iou"] == pytest.approx(2 / 3)
