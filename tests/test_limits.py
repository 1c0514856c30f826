"""Pixel limits, decompression bombs and progress inside a big picture, on pictures drawn here."""

import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from desample import cli
from desample.cli import main
from desample.imageio import load_image, looks_like_bomb


def _png(width: int, height: int, rows: bytes, bit_depth: int, colour_type: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def _one_bit_blank(width: int, height: int) -> bytes:
    """A valid, fully decodable 1-bit PNG: all black, compressing to almost nothing."""
    row = b"\0" + b"\0" * ((width + 7) // 8)
    return _png(width, height, row * height, 1, 0)


def test_the_classic_bomb_is_refused_from_its_header_and_the_batch_goes_on(tiny_weights, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    (src / "bomb.png").write_bytes(_one_bit_blank(16000, 16000))  # ~30 KB declaring 256 MP
    Image.new("RGB", (24, 20), (200, 30, 30)).save(src / "fine.png")
    assert (src / "bomb.png").stat().st_size < 100_000
    started = time.perf_counter()
    rc = main(["clean", str(src), "-o", str(tmp_path / "out"), "--model", tiny_weights, "-q"])
    assert time.perf_counter() - started < 20  # the model's start and one tiny picture; decoding 256 MP would take far longer
    err = capsys.readouterr().err
    assert rc == 1
    assert "bomb.png: 16000x16000 is too large" in err and "--max-megapixels" in err
    assert (tmp_path / "out" / "fine.png").exists() and not (tmp_path / "out" / "bomb.png").exists()


def test_a_file_declaring_far_more_pixels_than_its_bytes_is_refused_unless_the_limit_is_raised(tiny_weights, tmp_path, capsys):
    bomb = tmp_path / "small_bomb.png"
    bomb.write_bytes(_one_bit_blank(5000, 1000))  # 5 MP, under the default limit, in a few hundred bytes
    assert looks_like_bomb(5000, 1000, bomb.stat().st_size)
    assert main(["clean", str(bomb), "-o", str(tmp_path / "out.png"), "--model", tiny_weights, "-q"]) == 1
    err = capsys.readouterr().err
    assert "decompression bomb" in err and "--max-megapixels" in err
    assert not (tmp_path / "out.png").exists()
    # Raised explicitly, the same file is read (the CLI then lets it through: refuse_bombs is off).
    rgb, _ = load_image(bomb, as_uint8=True, max_pixels=10_000_000, refuse_bombs=False)
    assert rgb.shape == (1000, 5000, 3)


def test_real_pictures_are_far_from_the_bomb_signal():
    assert not looks_like_bomb(233, 330, 2_000)  # small: never a bomb, whatever it weighs
    assert not looks_like_bomb(4000, 4000, 40_000)  # a flat 16 MP PNG: 400 pixels a byte
    assert not looks_like_bomb(7000, 5000, 2_000_000)  # a 35 MP scan as JPEG


@pytest.mark.parametrize(("scale", "side", "ok"), [(2, 100, True), (2, 101, False), (4, 50, True), (4, 51, False)])
def test_pictures_just_under_and_just_over_the_limit(tiny_weights, tmp_path, capsys, scale, side, ok):
    src = tmp_path / "p.png"
    Image.new("RGB", (side, 100 if scale == 2 else 50), (10, 120, 200)).save(src)
    # 0.01 MP in; at --scale 4 a quarter of it (the output's limit is 4x the input's).
    rc = main(["clean", str(src), "-o", str(tmp_path / "o.png"), "--model", tiny_weights, "--scale", str(scale),
               "--max-megapixels", "0.01", "-q"])
    assert (rc == 0) == ok and (tmp_path / "o.png").exists() == ok
    if not ok:
        assert "--max-megapixels" in capsys.readouterr().err


def test_one_by_one_one_by_n_and_sixteen_bit_rgba(tiny_weights, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (1, 1), (255, 0, 0)).save(src / "dot.png")
    Image.new("RGB", (1, 77), (0, 255, 0)).save(src / "line.png")
    h, w = 20, 16
    rgba16 = np.zeros((h, w, 4), ">u2")
    rgba16[..., 0] = 65535
    rgba16[..., 3] = np.linspace(0, 65535, w, dtype=np.uint16)[None, :]
    rows = b"".join(b"\0" + rgba16[y].tobytes() for y in range(h))
    (src / "deep_rgba.png").write_bytes(_png(w, h, rows, 16, 6))
    assert main(["clean", str(src), "-o", str(tmp_path / "out"), "--model", tiny_weights, "-q"]) == 0
    assert Image.open(tmp_path / "out" / "dot.png").size == (2, 2)
    assert Image.open(tmp_path / "out" / "line.png").size == (2, 154)
    out = Image.open(tmp_path / "out" / "deep_rgba.png")
    assert out.mode == "RGBA" and out.size == (2 * w, 2 * h)
    a = np.asarray(out)[..., 3].astype(int)
    assert a[:, 0].mean() < 30 and a[:, -1].mean() > 225  # the transparency ramp is kept


def test_a_big_picture_shows_its_own_tile_progress_and_quiet_keeps_quiet(tiny_weights, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "PROGRESS_FROM_PIXELS", 10_000)
    src = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (160, 200, 3), np.uint8)).save(src)
    assert main(["clean", str(src), "-o", str(tmp_path / "o.png"), "--model", tiny_weights, "--tile", "64"]) == 0
    err = capsys.readouterr().err
    assert "big.png pass 1" in err and "tile" in err
    assert main(["clean", str(src), "-o", str(tmp_path / "q.png"), "--model", tiny_weights, "--tile", "64", "-q"]) == 0
    assert capsys.readouterr().err == ""


class _MarksEverything:
    """An engine that, looking blind, calls every pixel stamp (as noise once got "found on 99%")."""

    def __init__(self, inner):
        self.inner, self.scale, self.multiple = inner, inner.scale, inner.multiple
        self.border, self.guide_channels = inner.border, inner.guide_channels

    def __call__(self, x, guide):
        hr, lr, mask, matte = self.inner(x, guide)
        if not guide[:, 1].any():  # blind
            mask = np.ones_like(mask)
        return hr, lr, mask, matte


def test_a_picture_marked_wholesale_is_treated_as_one_without_a_stamp(tiny_weights):
    from desample.core import restore
    from desample.engine.runtime import load_engine

    engine = load_engine(tiny_weights, "torch", 1)
    noise = np.random.default_rng(0).integers(0, 256, (64, 80, 3), np.uint8)
    result = restore(noise, _MarksEverything(engine))
    assert result.stamp_coverage == 0
    np.testing.assert_array_equal(result.rgb, restore(noise, engine, detect=False).rgb)


def test_a_big_pictures_big_stamp_is_looked_for_at_preview_size(monkeypatch):
    """A card-sized picture under a card-sized word (core.stamp_seen_smaller): found whole and
    mostly removed. (On the real cards, shipped weights, the full-size look alone leaves 84% of the
    word's contrast and finds 34% of it, with the small look 39% and 95%: docs/real_previews.md. On
    this procedural picture the full-size look alone does as well: its mean error in the letters
    0.086 against 0.114.)"""
    from desample import core
    from desample.data.procedural import anime_picture
    from desample.engine.runtime import load_engine
    from desample.stamps.synthesis import Stamp, apply_stamp, real_shape

    w, h = 600, 840
    clean = np.asarray(anime_picture(w, h, seed=11), np.float32) / 255.0
    word = real_shape(h, w, np.random.default_rng(1), place=(0.85, 0.0, 0.0, 0.45))
    stamped = apply_stamp(clean, Stamp(alpha=0.68 * word, color=np.ones((h, w, 3), np.float32), kind="real"))
    engine = load_engine(None, "auto", 1)
    letters = word > 0.5
    with_small = core.restore(stamped, engine, scale=1)
    monkeypatch.setattr(core, "SEEN_FROM", 10_000)
    full_only = core.restore(stamped, engine, scale=1)
    recall_small = (with_small.mask > 0.5)[letters].mean()
    recall_full = (full_only.mask > 0.5)[letters].mean()
    assert recall_small > 0.9 and recall_small >= recall_full - 0.05
    err_small = np.abs(with_small.rgb - clean)[letters].mean()
    err_stamped = np.abs(stamped - clean)[letters].mean()
    assert err_small < 0.5 * err_stamped
