import numpy as np
import pytest
import torch
import torch.nn.functional as F

from desample import core
from desample.core import restore
from desample.engine.tiling import run_tiled
from desample.model.net import DesampleNet, NetConfig
from desample.model.weights import clean_state_dict, grow, load_weights, save_weights

from .conftest import TINY, randomised


def test_shapes_and_no_nan():
    model = DesampleNet(NetConfig()).eval()
    x = torch.rand(2, 3, 48, 64)
    with torch.no_grad():
        out = model(x)
    assert out.sr.shape == (2, 3, 96, 128)
    assert out.lr.shape == (2, 3, 48, 64)
    assert out.mask_logits.shape == (2, 1, 48, 64)
    assert torch.isfinite(out.sr).all()


def test_untrained_model_is_bicubic():
    # The residual heads start at zero and the matte near zero: training starts from "remove nothing, bicubic".
    model = DesampleNet(NetConfig()).eval()
    x = torch.rand(1, 3, 32, 40)
    with torch.no_grad():
        out = model(x)
    # The matte starts at sigmoid(-4) = 0.018: the inverse blend moves a pixel by at most 0.018 / 0.982.
    torch.testing.assert_close(out.lr, x, atol=0.02, rtol=0)
    bicubic = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
    assert (out.sr - bicubic).abs().mean() < 0.01


def test_guide_changes_the_output():
    model = randomised(DesampleNet(TINY))
    x = torch.rand(1, 3, 16, 16)
    g = torch.ones(1, 2, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(model(x).sr, model(x, g).sr)


def test_save_load_round_trip(tmp_path):
    model = randomised(DesampleNet(TINY))
    path = tmp_path / "m.safetensors"
    save_weights(model, path, {"note": "test"})
    loaded = load_weights(path)
    assert loaded.config == model.config
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        # fp16 storage: outputs agree to fp16 precision.
        torch.testing.assert_close(loaded(x).sr, model(x).sr, atol=2e-3, rtol=1e-2)
    assert (tmp_path / "m.json").exists()


def _same_function_then_backward(model, bigger, h: int, w: int):
    """Assert that the grown net computes what model does, then backpropagate a loss through it."""
    x, g = torch.rand(1, 3, h, w), torch.rand(1, 2, h, w)
    with torch.no_grad():
        a, b = model(x, g), bigger(x, g)
    torch.testing.assert_close(b.sr, a.sr)
    torch.testing.assert_close(b.mask_logits, a.mask_logits)
    bigger.train()
    bigger(x, g).sr.square().mean().backward()
    return x, g, a


def test_grow_adds_blocks_that_start_as_the_identity():
    model = randomised(DesampleNet(TINY)).eval()
    bigger = grow(model, {"sr_blocks": TINY.sr_blocks + 2, "blocks": (TINY.blocks[0] + 1, *TINY.blocks[1:])})
    assert bigger.config.sr_blocks == TINY.sr_blocks + 2 and not bigger.training
    assert sum(p.numel() for p in bigger.parameters()) > sum(p.numel() for p in model.parameters())
    _same_function_then_backward(model, bigger, 16, 24)
    # The new blocks can learn: their first conv is random, so the zeroed last conv gets gradients.
    assert bigger.sr_body[-1].conv2.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="cannot grow"):
        grow(model, {"widths": tuple(w * 2 for w in TINY.widths)})


def test_grow_adds_a_deeper_level_that_starts_silent_and_learns():
    model = randomised(DesampleNet(TINY)).eval()
    deeper = grow(model, {"widths": (*TINY.widths, 2 * TINY.widths[-1]), "blocks": (*TINY.blocks, 1)})
    assert deeper.config.multiple == 2 * TINY.multiple and deeper.config.border == 2 * TINY.border
    x, g, before = _same_function_then_backward(model, deeper, 32, 48)
    # Its way up starts at zero but gets gradients; once it has moved, the new level is heard.
    assert deeper.up[0][0].weight.grad.abs().sum() > 0
    with torch.no_grad():
        deeper.up[0][0].weight.normal_(0, 0.1)
        deeper.dec[0].conv2.weight.normal_(0, 0.1)
    assert (deeper.eval()(x, g).sr - before.sr).abs().max() > 1e-5  # rounding alone stays under 1e-6
    with pytest.raises(ValueError, match="cannot grow"):  # a deeper level must keep the others' widths
        grow(model, {"widths": (*TINY.widths[:-1], TINY.widths[-1] + 8, 64), "blocks": (*TINY.blocks, 1)})
    with pytest.raises(ValueError, match="as many blocks as widths"):
        grow(model, {"widths": (*TINY.widths, 64)})


def test_grow_adds_a_guide_channel_that_starts_unheard():
    model = randomised(DesampleNet(TINY)).eval()
    wider = grow(model, {"guide_channels": TINY.guide_channels + 1})
    x, g = torch.rand(1, 3, 16, 24), torch.rand(1, TINY.guide_channels, 16, 24)
    with torch.no_grad():
        a = model(x, g)
        for extra in (torch.zeros(1, 1, 16, 24), torch.rand(1, 1, 16, 24)):
            torch.testing.assert_close(wider(x, torch.cat([g, extra], 1)).sr, a.sr)
    wider.train()
    wider(x, torch.cat([g, torch.rand(1, 1, 16, 24)], 1)).sr.square().mean().backward()
    assert wider.head.weight.grad[:, 3 + TINY.guide_channels].abs().sum() > 0  # ...and it can learn to hear it


def test_clean_state_dict_strips_wrappers():
    sd = {"module._orig_mod.head.weight": torch.zeros(1), "head.bias": torch.ones(1)}
    assert set(clean_state_dict(sd)) == {"head.weight", "head.bias"}


def _tiled(fn, x, scales, multiple, border, **kw):
    """run_tiled over an (H, W, C) array into fresh float32 outputs."""
    h, w, _ = x.shape
    probe = fn(np.ascontiguousarray(x[:multiple, :multiple].transpose(2, 0, 1)[None]))
    outs = [np.zeros((s * h, s * w, p.shape[1]), np.float32) for s, p in zip(scales, probe, strict=True)]
    run_tiled(fn, x, scales, outs, multiple, border, **kw)
    return outs


def test_tiled_equals_untiled():
    model = randomised(DesampleNet(TINY), seed=3)
    cfg = model.config

    def fn(t):
        with torch.no_grad():
            out = model(torch.from_numpy(t[:, :3]), torch.from_numpy(t[:, 3:]))
        return out.sr.numpy(), out.lr.numpy()

    x = np.concatenate([np.random.default_rng(0).random((70, 90, 3)), np.zeros((70, 90, 2))], 2).astype(np.float32)
    whole = _tiled(fn, x, (2, 1), cfg.multiple, cfg.border, tile=256)
    tiled = _tiled(fn, x, (2, 1), cfg.multiple, cfg.border, tile=48, overlap=8, batch=3)
    assert whole[0].shape == (140, 180, 3) and tiled[1].shape == (70, 90, 3)
    # Tiles see `border` px of context; the U-Net's far field beyond it makes small differences.
    assert np.abs(whole[0] - tiled[0]).max() < 5e-2
    assert np.abs(whole[0] - tiled[0]).mean() < 1e-3


def _box3(t: np.ndarray) -> np.ndarray:
    p = np.pad(t, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    h, w = t.shape[2:]
    return sum(p[:, :, i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9.0


def test_tiling_is_exact_for_a_local_operator():
    # Receptive field of 1 px < border: every blended tile holds the exact values, seams included.
    def fn(t):
        local = _box3(t)
        return local.repeat(2, axis=2).repeat(2, axis=3) * 0.5, local

    x = np.random.default_rng(1).random((61, 83, 3)).astype(np.float32)
    whole = [o[0].transpose(1, 2, 0) for o in fn(x.transpose(2, 0, 1)[None])]
    tiled = _tiled(fn, x, (2, 1), multiple=8, border=8, tile=32, overlap=8, batch=2)
    for a, b in zip(whole, tiled, strict=True):
        inner = (slice(2, -2), slice(2, -2))  # the picture's own edge is padded differently
        np.testing.assert_allclose(a[inner], b[inner], atol=1e-5)


def test_tiling_writes_uint8_and_one_channel_outputs():
    x = np.random.default_rng(2).random((45, 70, 3)).astype(np.float32)
    rgb8 = np.zeros((90, 140, 3), np.uint8)
    grey = np.zeros((45, 70), np.float32)
    run_tiled(lambda t: (t.repeat(2, axis=2).repeat(2, axis=3), t[:, :1]), x, (2, 1), (rgb8, grey), 8, 8, tile=32)
    np.testing.assert_array_equal(rgb8, (x.repeat(2, 0).repeat(2, 1) * 255 + 0.5).astype(np.uint8))
    np.testing.assert_allclose(grey, x[..., 0], atol=1e-6)
    # uint8 input is read as /255
    x8 = (x * 255).astype(np.uint8)
    run_tiled(lambda t: (t.repeat(2, axis=2).repeat(2, axis=3), t[:, :1]), x8, (2, 1), (None, grey), 8, 8, tile=32)
    np.testing.assert_allclose(grey, x8[..., 0] / 255.0, atol=1e-6)


def test_restore_scales_and_alpha():
    model = randomised(DesampleNet(TINY))
    rgb = np.random.default_rng(0).random((37, 51, 3)).astype(np.float32)
    alpha = np.linspace(0, 1, 37 * 51, dtype=np.float32).reshape(37, 51)
    for scale in (1, 2, 4):
        res = restore(rgb, model, scale=scale, alpha=alpha)
        assert res.rgb.shape == (37 * scale, 51 * scale, 3)
        assert res.alpha.shape == (37 * scale, 51 * scale)
        assert 0 <= res.rgb.min() and res.rgb.max() <= 1
        assert res.mask.shape == (37, 51)


def test_restore_tiny_and_tiled_pictures():
    model = randomised(DesampleNet(TINY))
    for h, w in ((1, 1), (3, 5), (9, 130)):
        rgb = np.random.default_rng(h).random((h, w, 3)).astype(np.float32)
        assert restore(rgb, model, scale=2).rgb.shape == (2 * h, 2 * w, 3)
    rgb = np.random.default_rng(0).random((100, 140, 3)).astype(np.float32)
    whole = restore(rgb, model, tile=512).rgb
    tiled = restore(rgb, model, tile=64).rgb
    assert np.abs(whole - tiled).mean() < 2e-3


def test_restore_rejects_bad_arguments():
    import pytest

    model = randomised(DesampleNet(TINY))
    rgb = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(ValueError, match="scale"):
        restore(rgb, model, scale=3)
    with pytest.raises(ValueError, match="mask"):
        restore(rgb, model, mask=np.zeros((4, 4), np.float32))


def test_bicubic_module_is_pytorch_bicubic():
    from desample.model.net import Bicubic

    for scale in (2, 4):
        x = torch.rand(2, 3, 13, 21)
        want = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
        torch.testing.assert_close(Bicubic(scale)(x), want, atol=1e-5, rtol=0)


def test_restore_options_detect_denoise_inpaint(monkeypatch):
    """detect=False tells the net there is no stamp; denoise < 1 gives back the share of (input -
    clean LR) outside the stamp; inpaint fills the mask before the net refines it, and without it
    only what the net sees of it."""
    model = randomised(DesampleNet(TINY))
    rgb = np.random.default_rng(3).random((24, 32, 3)).astype(np.float32)
    full = restore(rgb, model, scale=1)
    # Away from where a stamp may be, no noise reduction gives the input back (a random net "finds"
    # a stamp nearly everywhere: told there is none, it leaves the whole picture to check).
    plain = restore(rgb, model, scale=1, detect=False)
    none = restore(rgb, model, scale=1, denoise=0.0, detect=False)
    half = restore(rgb, model, scale=1, denoise=0.5, detect=False)
    np.testing.assert_allclose(none.rgb, rgb, atol=1e-5)
    np.testing.assert_allclose(half.rgb, np.clip((plain.rgb + rgb) / 2, 0, 1), atol=1e-5)
    from desample.core import KEEP_AWAY
    from desample.ops import dilate

    assert (dilate(full.mask > 0.2, KEEP_AWAY)).all()  # and where one may be, it is left alone:
    np.testing.assert_allclose(restore(rgb, model, scale=1, denoise=0.0).rgb, full.rgb, atol=1e-6)
    # Enlarged: the output made small again is (nearly) the input; without it, far from it.
    big_plain = restore(rgb, model, scale=2, detect=False).rgb
    big_none = restore(rgb, model, scale=2, denoise=0.0, detect=False).rgb
    assert big_none.shape == (48, 64, 3)

    def small(x):
        return x.reshape(24, 2, 32, 2, 3).mean(axis=(1, 3))

    assert np.abs(small(big_none) - rgb).mean() < 0.4 * np.abs(small(big_plain) - rgb).mean()
    blind_off = plain
    assert not np.allclose(blind_off.rgb, full.rgb)  # the "no stamp" guide reaches the net
    mask = np.zeros((24, 32), np.float32)
    mask[8:16, 8:16] = 1
    filled = restore(rgb, model, scale=1, mask=mask, detect=False, inpaint=True)
    # Without inpaint, only the mask's pixels the network sees stamped (its matte) are repainted.
    monkeypatch.setattr(core, "FILL_FROM_MATTE", 1.0)
    monkeypatch.setattr(core, "FILL_FULL_MATTE", 2.0)  # it sees nothing: the mask only guides
    guided = restore(rgb, model, scale=1, mask=mask, detect=False)
    assert (guided.mask >= mask).all() and (filled.mask >= mask).all()
    assert np.abs(guided.rgb - filled.rgb)[8:16, 8:16].mean() > 10 * np.abs(guided.rgb - filled.rgb)[:4].mean()
    monkeypatch.setattr(core, "FILL_FROM_MATTE", -2.0)
    monkeypatch.setattr(core, "FILL_FULL_MATTE", -1.0)  # it sees all of it: all of it is repainted
    np.testing.assert_allclose(restore(rgb, model, scale=1, mask=mask, detect=False).rgb, filled.rgb, atol=1e-6)
    with pytest.raises(ValueError, match="denoise"):
        restore(rgb, model, denoise=1.5)


def test_a_mask_starts_from_the_networks_own_removal(monkeypatch):
    """Inside a mask what shows through a see-through stamp is kept: the masked pixels start from the
    network's own blind removal, not from a fill (only where its matte says nothing shows through)."""
    monkeypatch.setattr(core, "FILL_FROM_MATTE", 1.0)
    monkeypatch.setattr(core, "FILL_FULL_MATTE", 2.0)  # it sees nothing opaque: nothing is filled
    model = randomised(DesampleNet(TINY))
    engine = core.as_engine(model)
    rgb = np.random.default_rng(3).random((24, 32, 3)).astype(np.float32)
    mask = np.zeros((24, 32), np.float32)
    mask[8:16, 8:16] = 1

    def guided_pass(start):
        out = np.empty_like(rgb)
        core.network_pass(engine, start, mask, 512, None, out, None)
        return out

    own_removal = np.empty_like(rgb)
    core.network_pass(engine, rgb, None, 512, None, own_removal, np.zeros((24, 32), np.float32))
    got = restore(rgb, model, scale=1, mask=mask, detect=False).rgb
    np.testing.assert_allclose(got, guided_pass(np.where(mask[..., None] > 0.5, own_removal, rgb)), atol=1e-5)
    assert np.abs(got - guided_pass(rgb)).max() > 1e-3  # not the picture as given


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_mirror_averages_the_picture_and_its_mirror_image(scale):
    # Without inpaint the masked pixels start from the net's own removal of the picture as given,
    # which a flipped picture does not mirror: with inpaint (a fill alone) the flip alone is compared.
    model = randomised(DesampleNet(TINY))
    rgb = np.random.default_rng(1).random((37, 51, 3)).astype(np.float32)
    mask = np.zeros((37, 51), np.float32)
    mask[5:20, 3:30] = 1  # lopsided: a flip that forgot to flip the mask back would show
    plain = restore(rgb, model, scale=scale, mask=mask, detect=False, inpaint=True)
    flipped = restore(rgb[:, ::-1], model, scale=scale, mask=mask[:, ::-1], detect=False, inpaint=True)
    both = restore(rgb, model, scale=scale, mask=mask, detect=False, inpaint=True, mirror=True)
    if scale == 4:  # the second 2x pass is mirrored too: the averages differ from this simple one
        assert np.abs(both.rgb - (plain.rgb + flipped.rgb[:, ::-1]) / 2).mean() < 0.02
    else:
        np.testing.assert_allclose(both.rgb, (plain.rgb + flipped.rgb[:, ::-1]) / 2, atol=1e-5)
    assert np.abs(both.rgb - plain.rgb).mean() > 1e-3  # the mirror changed something
    as_bytes = restore(rgb, model, scale=scale, mask=mask, detect=False, inpaint=True, mirror=True, dtype=np.uint8).rgb
    # 8-bit averaging rounds once (at 4x the 2x in between is 8-bit too: a few levels more, here and there)
    assert np.abs(as_bytes / 255.0 - both.rgb).max() <= (1.5 if scale < 4 else 4) / 255


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_keep_noise_in_bands_equals_all_at_once(scale, monkeypatch):
    """_keep_noise works in bands of input rows (bounded memory): their seams must not show."""
    import desample.core as core

    rng = np.random.default_rng(5)
    rgb = rng.random((50, 37, 3)).astype(np.float32)
    out = rng.random((50 * scale, 37 * scale, 3)).astype(np.float32)
    stamp = np.zeros((50, 37), np.float32)
    stamp[20:30, 5:15] = 1
    monkeypatch.setattr(core, "BAND", 1000)
    whole = core._keep_noise(out.copy(), rgb, stamp, 1.0)
    monkeypatch.setattr(core, "BAND", 7)
    banded = core._keep_noise(out.copy(), rgb, stamp, 1.0)
    np.testing.assert_allclose(banded, whole, atol=1e-5)
    assert np.abs(whole - out).mean() > 0.01  # and it did something
    as_bytes = core._keep_noise((out * 255 + 0.5).astype(np.uint8), rgb, stamp, 1.0)
    assert np.abs(as_bytes / 255.0 - whole).max() <= 1.5 / 255
