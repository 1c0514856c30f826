"""`desample bench --real`: the numbers it gives without truth mean what they say."""

import json

import numpy as np
from PIL import Image

from desample.bench.real import Reference, luminance, score_picture, stamp_contrast, summarise
from desample.cli import main
from desample.data.procedural import anime_picture
from desample.imageio import to_uint8
from desample.stamps.synthesis import Stamp, apply_stamp, real_shape


def _stamped(seed: int, size=(233, 330)):
    w, h = size
    clean = np.asarray(anime_picture(w, h, seed=seed), np.float32) / 255.0
    # A real preview's stamp: one white word, 60% opaque, the same place in every picture.
    shape = real_shape(h, w, np.random.default_rng(7), place=(0.85, 0.0, 0.0, 0.45))
    stamp = Stamp(alpha=0.6 * shape, color=np.ones((h, w, 3), np.float32), kind="real")
    return clean, stamp, apply_stamp(clean, stamp)


def _twice(x: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(x, 2, axis=0), 2, axis=1)


def test_a_white_stamp_has_a_high_contrast_and_its_removal_takes_it_away():
    clean, stamp, stamped = _stamped(3)
    ref = stamp.alpha > 0.3
    before = stamp_contrast(luminance(stamped), ref)
    after = stamp_contrast(luminance(clean), ref)
    assert before > 40  # a 60% white word over an illustration
    assert abs(after) < 0.3 * before


def test_score_picture_residual_collateral_recall_and_precision():
    clean, stamp, stamped = _stamped(5)
    ref = stamp.alpha > 0.3
    rgb, plain = to_uint8(stamped), to_uint8(_twice(stamped))
    removed = to_uint8(_twice(clean))
    perfect = score_picture(rgb, removed, plain, ref.astype(np.float32), ref)
    untouched = score_picture(rgb, plain, plain, np.zeros(ref.shape, np.float32), ref)
    assert perfect["recall"] == 1.0 and perfect["precision"] == 1.0
    assert abs(perfect["contrast_after"]) < 0.3 * perfect["contrast_before"]
    assert untouched["contrast_after"] == untouched["contrast_before"] and untouched["recall"] == 0
    assert untouched["collateral"] == 0 and untouched["marked_outside"] == 0
    # Smearing the picture away from the stamp is collateral, and marking there costs precision.
    smeared = removed.copy()
    smeared[: 2 * 40] = 128
    wrong = ref.copy()
    wrong[:40] = True
    bad = score_picture(rgb, smeared, plain, wrong.astype(np.float32), ref)
    assert bad["collateral"] > 5 and bad["precision"] < 0.8 and bad["marked_outside"] > 0.05
    total = summarise([perfect, untouched])
    assert abs(total["residual"] - (perfect["contrast_after"] + untouched["contrast_after"])
               / (perfect["contrast_before"] + untouched["contrast_before"])) < 1e-9


def test_bench_real_end_to_end_on_a_folder_with_a_reference(tiny_weights, tmp_path):
    pictures = tmp_path / "cards"
    pictures.mkdir()
    for i in range(3):
        Image.fromarray(to_uint8(_stamped(10 + i, (96, 128))[2])).save(pictures / f"card{i}.png")
    anime_picture(96, 128, seed=99).save(pictures / "other.png")
    _, stamp, _ = _stamped(10, (96, 128))
    Image.fromarray(((stamp.alpha > 0.3) * 255).astype(np.uint8)).resize((192, 256), Image.NEAREST).save(tmp_path / "mask.png")
    (tmp_path / "ref.json").write_text(json.dumps({"mask": "mask.png", "without": ["other"]}))
    assert Reference.load(tmp_path / "ref.json").at((96, 128)).shape == (128, 96)
    out = tmp_path / "report"
    rc = main(["bench", "--real", str(pictures), "--reference", str(tmp_path / "ref.json"), "--real-widths", "64", "0",
               "--model", tiny_weights, "--threads", "1", "-o", str(out)])
    assert rc == 0
    results = json.loads((out / "real.json").read_text())
    assert set(results["widths"]) == {"64", "full"}
    for block in results["widths"].values():
        for method in ("blind", "shared"):
            s = block[method]["summary"]
            assert s["pictures"] == 4 and s["with_reference"] == 3
            assert {"residual", "recall", "precision", "collateral", "marked_outside"} <= set(s)
            other = [r for r in block[method]["pictures"] if r["picture"] == "other"][0]
            assert "recall" not in other and "collateral" in other
    assert "| full | shared |" in (out / "real.md").read_text()
