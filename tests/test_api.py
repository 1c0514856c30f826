"""One request path: the CLI, the web page and Python callers get the same picture for the same request."""

import io

import numpy as np
import pytest
from PIL import Image

from desample.api import CleanOptions, clean, read_mask
from desample.cli import main
from desample.data.procedural import anime_picture
from desample.engine.runtime import load_engine
from desample.stamps.synthesis import apply_stamp, make_stamp


@pytest.fixture(scope="module")
def engine():
    return load_engine(threads=1)


def _stamped(tmp_path, h=96, w=128, seed=21):
    truth = np.asarray(anime_picture(w, h, seed=seed), np.float32) / 255
    stamp = make_stamp(h, w, np.random.default_rng(seed), "logo", extra=False)
    path = tmp_path / "stamped.jpg"
    Image.fromarray((apply_stamp(truth, stamp) * 255 + 0.5).astype(np.uint8)).save(path, quality=85)
    return path, stamp


def _mask_with_alpha(tmp_path, stamp) -> bytes:
    """A painting on a transparent layer: white everywhere, visible (alpha) only over the stamp's left half."""
    h, w = stamp.alpha.shape
    alpha = np.zeros((h, w), np.uint8)
    ys, xs = np.nonzero(stamp.alpha > 0.05)
    alpha[ys.min() : ys.max() + 1, xs.min() : (xs.min() + xs.max()) // 2] = 255
    buf = io.BytesIO()
    Image.fromarray(np.dstack([np.full((h, w, 3), 255, np.uint8), alpha])).save(buf, "PNG")
    (tmp_path / "mask.png").write_bytes(buf.getvalue())
    return buf.getvalue()


def test_cli_web_and_python_give_the_same_bytes_for_a_mask_with_alpha(tmp_path, engine):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from desample.web.app import ServeSettings, create_app

    path, stamp = _stamped(tmp_path)
    mask_png = _mask_with_alpha(tmp_path, stamp)
    assert main(["clean", str(path), "-o", str(tmp_path / "cli.png"), "--mask", str(tmp_path / "mask.png"), "-q",
                 "--threads", "1"]) == 0
    cli = np.asarray(Image.open(tmp_path / "cli.png"))
    with TestClient(create_app(ServeSettings(), engine=engine)) as client:
        r = client.post("/api/clean", files={"file": ("stamped.jpg", path.read_bytes(), "image/jpeg"),
                                             "mask": ("mask.png", mask_png, "image/png")}, data={"scale": "2"})
    assert r.status_code == 200, r.text
    web = np.asarray(Image.open(io.BytesIO(r.content)))
    python = clean(path, engine, CleanOptions(), mask=read_mask(mask_png)).rgb
    assert np.array_equal(cli, web) and np.array_equal(cli, python)
    # the mask's alpha counts: the white but transparent part is no mask, so the result differs from an opaque white mask
    opaque = clean(path, engine, CleanOptions(), mask=np.ones(stamp.alpha.shape, np.float32)).rgb
    assert not np.array_equal(python, opaque)


def test_an_empty_painting_is_no_mask(tmp_path, engine):
    path, stamp = _stamped(tmp_path)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((*stamp.alpha.shape, 4), np.uint8)).save(buf, "PNG")
    assert read_mask(buf.getvalue()) is None
    assert np.array_equal(clean(path, engine, mask=None).rgb, clean(path.read_bytes(), engine).rgb)


def test_a_lossless_picture_is_not_denoised_unless_asked(tmp_path, engine):
    png = tmp_path / "p.png"
    Image.fromarray(np.asarray(anime_picture(64, 48, seed=2))).save(png)
    default = clean(png, engine, CleanOptions(detect=False)).rgb
    assert np.array_equal(default, clean(png, engine, CleanOptions(detect=False, denoise=0.0)).rgb)
    assert not np.array_equal(default, clean(png, engine, CleanOptions(detect=False, denoise=1.0)).rgb)


def test_options_refuse_a_denoise_outside_0_to_1():
    with pytest.raises(ValueError, match="between 0 and 1"):
        CleanOptions(denoise=1.5)


def test_the_folder_example_cleans_a_folder_and_skips_a_bad_file(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(np.asarray(anime_picture(64, 48, seed=4))).save(src / "sub" / "a.png")
    (src / "broken.jpg").write_text("not a picture")
    script = Path(__file__).resolve().parents[1] / "examples" / "clean_folder.py"
    run = subprocess.run([sys.executable, str(script), str(src), str(tmp_path / "out")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "skipped" in run.stdout and "broken.jpg" in run.stdout
    assert Image.open(tmp_path / "out" / "sub" / "a.png").size == (128, 96)
