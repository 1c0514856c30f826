"""The shipped default model: it loads, it is the trained one, and it beats bicubic on the README example."""

import json
from pathlib import Path

from desample.core import restore
from desample.imageio import load_image
from desample.metrics import enlarge_mask, psnr
from desample.model.net import bicubic
from desample.model.weights import DEFAULT_WEIGHTS, load_weights
from desample.stamps.synthesis import classic_sample_stamp

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_weights_are_small_fp16_with_their_validation_record():
    assert DEFAULT_WEIGHTS.stat().st_size < 8 * 2**20
    meta = json.loads(DEFAULT_WEIGHTS.with_suffix(".json").read_text())
    assert meta["val"]["psnr"] > meta["val"]["bicubic_psnr"]
    assert meta["samples"] > 10_000


def test_shipped_model_removes_the_example_stamp_better_than_bicubic():
    stamped, _ = load_image(EXAMPLES / "stamped.jpg")
    truth, _ = load_image(EXAMPLES / "truth.png")
    out = restore(stamped, load_weights(), scale=2).rgb
    base = bicubic(stamped, 2)
    inside = enlarge_mask(classic_sample_stamp(330, 233).mask, 2)  # the stamp make_example.py used
    assert psnr(out, truth) > psnr(base, truth) + 0.1
    assert psnr(out, truth, inside) > psnr(base, truth, inside) + 0.1
