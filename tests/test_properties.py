"""Property tests: any size from 1x1 up, any picture mode: outputs have the expected size, mode and range."""

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from desample.core import restore
from desample.engine.tiling import run_tiled
from desample.imageio import load_image, save_image
from desample.stamps.synthesis import KINDS, apply_stamp, make_stamp

pytest.importorskip("hypothesis")
FAST = settings(max_examples=25, deadline=None)
sizes = st.integers(min_value=1, max_value=90)


@FAST
@given(h=sizes, w=sizes, tile=st.sampled_from([32, 48, 64, 256]), overlap=st.sampled_from([0, 4, 8]))
def test_tiling_covers_every_pixel_exactly_for_a_pointwise_map(h, w, tile, overlap):
    x = np.random.default_rng(h * 1000 + w).random((h, w, 3)).astype(np.float32)
    big = np.zeros((2 * h, 2 * w, 3), np.float32)
    same = np.zeros((h, w), np.float32)

    def fn(t):
        return t.repeat(2, axis=2).repeat(2, axis=3), t[:, 1:2]

    run_tiled(fn, x, (2, 1), (big, same), multiple=8, border=8, tile=tile, overlap=overlap)
    np.testing.assert_allclose(big, x.repeat(2, 0).repeat(2, 1), atol=1e-6)
    np.testing.assert_allclose(same, x[..., 1], atol=1e-6)


@FAST
@given(h=sizes, w=sizes, kind=st.sampled_from(KINDS), seed=st.integers(0, 10_000))
def test_any_stamp_on_any_size(h, w, kind, seed):
    stamp = make_stamp(h, w, np.random.default_rng(seed), kind)
    assert stamp.alpha.shape == (h, w) and stamp.color.shape[-1] == 3
    assert 0 <= stamp.alpha.min() and stamp.alpha.max() <= 1
    out = apply_stamp(np.full((h, w, 3), 0.5, np.float32), stamp)
    assert out.shape == (h, w, 3) and np.isfinite(out).all() and 0 <= out.min() and out.max() <= 1


MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"]


@FAST
@given(h=sizes, w=sizes, mode=st.sampled_from(MODES), fmt=st.sampled_from(["PNG", "TIFF", "WEBP", "JPEG"]))
def test_any_mode_loads_as_rgb_in_range_and_saves_back(tmp_path_factory, h, w, mode, fmt):
    rgb = (np.random.default_rng(h + 7 * w).random((h, w, 3)) * 255).astype(np.uint8)
    im = Image.fromarray(rgb).convert(mode)
    buf = io.BytesIO()
    try:
        im.save(buf, fmt)
    except (OSError, ValueError, KeyError):
        return  # this format cannot hold this mode: nothing to load
    path = tmp_path_factory.mktemp("m") / f"x.{fmt.lower()}"
    path.write_bytes(buf.getvalue())
    arr, alpha = load_image(path)
    assert arr.shape == (h, w, 3) and arr.dtype == np.float32 and 0 <= arr.min() and arr.max() <= 1
    assert alpha is None or alpha.shape == (h, w)
    out = path.with_name("back.png")
    save_image(out, arr, alpha)
    back = Image.open(out)
    assert back.size == (w, h) and back.mode == ("RGBA" if alpha is not None else "RGB")


@settings(max_examples=10, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), scale=st.sampled_from([1, 2, 4]), with_alpha=st.booleans())
def test_restore_any_size(h, w, scale, with_alpha):
    from desample.model.net import DesampleNet

    from .conftest import TINY, randomised

    model = _model(randomised, DesampleNet, TINY)
    rgb = np.random.default_rng(h * w).random((h, w, 3)).astype(np.float32)
    alpha = np.ones((h, w), np.float32) * 0.5 if with_alpha else None
    res = restore(rgb, model, scale=scale, alpha=alpha, dtype=np.uint8)
    assert res.rgb.shape == (scale * h, scale * w, 3) and res.rgb.dtype == np.uint8
    assert res.mask.shape == (h, w)
    assert (res.alpha is None) == (not with_alpha)


_cache: dict = {}


def _model(randomised, net, cfg):
    if "m" not in _cache:
        _cache["m"] = randomised(net(cfg))
    return _cache["m"]
