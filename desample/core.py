"""restore(): the one function the CLI, the web page, the benchmark and the tests call.

Picture in, clean picture out: stamp detection and removal, JPEG noise reduction, 1x/2x/4x,
alpha kept (enlarged separately), tiled so any size runs in bounded memory. It runs on any
engine (ONNX Runtime by default, or a PyTorch model) and needs no torch itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .engine.runtime import Engine, as_engine
from .engine.tiling import run_tiled
from .ops import as_float, box_mean, dilate, harmonic_fill, unblend

SCALES = (1, 2, 4)
KEEP_AWAY = 8  # input px around where a stamp may be (probability > 0.2) that _keep_noise leaves alone
BAND = 256  # rows per band where whole-picture temporaries would grow with the picture
# With a mask, its pixels start from the network's own blind removal (what shows through a
# see-through stamp is kept) and are repainted from their surroundings as much as the network's own
# matte says nothing shows through: none below FROM, all above FULL. Measured with true masks,
# step-36,000 weights (`desample bench --images ../shared/data/anime --limit 8 --methods
# desample_mask`; 16 previews, in the stamp / whole picture; blind 23.34 / 27.92): starting from the
# picture as given and repainting from a matte of 0.05 to 0.5 (the first way) 23.70 / 27.84 (large
# Japanese words 18.81, blind 20.42: a fill cannot know what showed through); from the network's own
# removal, repainting from 0.3 to 0.8, 24.54 / 28.27 (those words 20.89); the same on 72 previews
# (`--limit 24 --kinds-per-picture 3`; blind 21.66 / 26.67): 22.43 / 26.87 -> 22.74 / 27.10; 0.5 to 0.8,
# 0.2 to 0.8, 0.3 to 0.7 or 0.9 within 0.06 dB of it. Procedural previews (research/measure_mask_fill.py,
# 60 previews, 5 kinds; mean error in the stamp / whole picture, blind 0.0826 / 0.0131): loose box
# mask 0.0695 / 0.0139 -> 0.0687 / 0.0136, exact mask 0.0652 / 0.0107 -> 0.0657 / 0.0103.
FILL_FROM_MATTE, FILL_FULL_MATTE = 0.3, 0.8


# A picture whose long side is over SEEN_FROM is also looked at made small, its long side SEEN_AT:
# the network sees a stamp whose letters fit its reach (~100 px, trained on previews of 200-750 px);
# a big stamp at full size is only flat see-through colour to it (real cards at 600x838: 1% of
# the word found, at 233 px wide 20%). What it finds there becomes a known stamp at full size.
SEEN_FROM, SEEN_AT = 560, 360
SEEN_MIN_SHARE = 0.002  # found on less than this share of the small picture: nothing to carry over

# Blind detection marking more than this share of a picture is not believed: no stamp covers that
# much (synthetic ones at most 73%, tiled text; real previews' words 10-25%), while noise and some
# textures were marked wholesale (a noise picture: 99%).
WHOLESALE = 0.8


@dataclass
class RestoreResult:
    rgb: np.ndarray  # (sH, sW, 3): float32 in [0,1], or uint8 when asked for
    alpha: np.ndarray | None  # (sH, sW) float32 in [0,1] or None
    mask: np.ndarray  # (H, W) float32 in [0,1]: the detected (or given) stamp at input size

    @property
    def stamp_coverage(self) -> float:
        """Fraction of the input's pixels found stamped."""
        return float((self.mask > 0.5).mean())


def network_pass(engine: Engine, rgb: np.ndarray, mask: np.ndarray | None, tile: int, out: np.ndarray | None,
                 lr_out: np.ndarray | None, mask_out: np.ndarray | None, no_stamp: bool = False,
                 matte_out: np.ndarray | None = None, progress=None) -> None:
    """One tiled pass of the network over rgb (H, W, 3), its outputs written into the arrays given
    (None: not wanted): out (sH, sW, 3), lr_out (H, W, 3), mask_out and matte_out (H, W).

    mask: a known matte/mask, or None (blind); no_stamp: tell the model there is none (guide given, all zero).
    """
    x = np.concatenate([as_float(rgb), mask[..., None]], axis=2) if mask is not None else rgb

    def fn(t: np.ndarray):
        # The guide: the known matte and a "guide given" flag; zeros when nothing is known.
        guide = np.zeros((t.shape[0], engine.guide_channels, *t.shape[2:]), np.float32)
        if mask is not None:
            guide[:, 0] = t[:, 3]
        if mask is not None or no_stamp:
            guide[:, 1] = 1.0
        return engine(np.ascontiguousarray(t[:, :3]), guide)

    run_tiled(fn, x, (engine.scale, 1, 1, 1), (out, lr_out, mask_out, matte_out), engine.multiple, engine.border, tile,
              progress=progress)


def _mirrored_pass(engine: Engine, rgb: np.ndarray, mask: np.ndarray | None, tile: int, outs: list[np.ndarray | None],
                   no_stamp: bool, progress=None) -> None:
    """network_pass on the mirrored picture, each output averaged into `outs` (out, lr_out, mask_out): a
    second opinion whose errors partly cancel the first's (waifu2x's "TTA")."""
    mirrored = [None if o is None else np.empty_like(o) for o in outs]

    def flip(m):
        return None if m is None else np.ascontiguousarray(m[:, ::-1])

    network_pass(engine, flip(rgb), flip(mask), tile, *mirrored, no_stamp=no_stamp, progress=progress)
    for o, m in zip(outs, mirrored, strict=True):
        if o is None:
            continue
        for y in range(0, o.shape[0], BAND):  # in bands: no full-size temporaries
            a, b = o[y : y + BAND], m[y : y + BAND, ::-1]
            if o.dtype == np.uint8:
                a[...] = (a.astype(np.uint16) + b + 1) >> 1
            else:
                a += b
                a *= 0.5


def _keep_noise(out: np.ndarray, rgb: np.ndarray, stamp: np.ndarray, share: float) -> np.ndarray:
    """out (in place) + share x (input - out made small again), enlarged, away from the stamp.

    What the model changed in the input outside the stamp (grain, noise, and any drift of its
    colours) comes back; at share 1 the output, made small again, is the input there: one
    back-projection step. Measured on pictures never JPEG-compressed (8 held-out, 2x): +0.49 dB and
    colour difference (CIEDE2000) 1.52 -> 1.22 on clean ones (bicubic: 1.31); +0.2 dB on stamped
    ones, 0.1 dB less inside the stamp. On JPEG-compressed ones it brings the JPEG noise back
    (-0.3 dB): that is what denoise = 1 is for.
    """

    h, w = rgb.shape[:2]
    s = out.shape[0] // h
    weight = share * (1 - dilate(stamp > 0.2, KEEP_AWAY).astype(np.float32))
    diff = np.empty((h, w, 3), np.float32)
    for y in range(0, h, BAND):
        y1 = min(y + BAND, h)
        small = as_float(out[y * s : y1 * s]).reshape(y1 - y, s, w, s, 3).mean(axis=(1, 3))
        diff[y:y1] = (as_float(rgb[y:y1]) - small) * weight[y:y1, :, None]
    if s == 1:
        big_bands = ((y, diff[y : y + BAND]) for y in range(0, h, BAND))
    else:
        big_bands = (_enlarged_band(diff, y, s) for y in range(0, h, BAND))
    for y, big in big_bands:
        part = out[y * s : y * s + big.shape[0]]
        mixed = np.clip(as_float(part) + big, 0, 1)
        part[...] = (mixed * 255 + 0.5).astype(np.uint8) if out.dtype == np.uint8 else mixed
    return out


def _enlarged_band(x: np.ndarray, y: int, s: int, halo: int = 4) -> tuple[int, np.ndarray]:
    """(y, rows y .. y+BAND of x enlarged s times, bicubic): the band is cut with a halo, so its
    edges are those of the whole picture enlarged."""
    h, w = x.shape[:2]
    y0, y1 = max(y - halo, 0), min(y + BAND + halo, h)
    size = (w * s, (y1 - y0) * s)
    big = np.stack([np.asarray(Image.fromarray(x[y0:y1, :, c], mode="F").resize(size, Image.BICUBIC)) for c in range(x.shape[2])], 2)
    return y, big[(y - y0) * s : (min(y + BAND, h) - y0) * s]


def fit_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A user's mask (H', W') in [0,1] at the picture's size, binary (white = stamp): nearest neighbour."""
    h, w = shape
    if mask.shape != (h, w):
        mask = np.asarray(Image.fromarray((np.clip(mask, 0, 1) * 255).astype(np.uint8)).resize((w, h), Image.NEAREST), np.float32) / 255.0
    return (mask > 0.5).astype(np.float32)


def _enlarge_alpha(alpha: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    im = Image.fromarray(alpha.astype(np.float32), mode="F").resize(size, Image.BICUBIC)
    return np.clip(np.asarray(im, np.float32), 0, 1)


def restore(
    rgb: np.ndarray,
    engine,
    scale: int = 2,
    alpha: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    tile: int = 512,
    dtype=np.float32,
    stamp: tuple[np.ndarray, np.ndarray] | None = None,
    detect: bool = True,
    denoise: float = 1.0,
    inpaint: bool = False,
    mirror: bool = False,
    progress=None,
) -> RestoreResult:
    """Remove the stamp from rgb (H, W, 3), float32 in [0,1] or uint8, and enlarge it by `scale` (1, 2 or 4).

    engine: from `load_engine()`, or a DesampleNet. mask: optional (H, W) matte or mask of the
    stamp in [0,1], e.g. drawn by the user. dtype: np.float32 or np.uint8 (4x less memory) output.
    stamp: a known (matte (H, W), colour (H, W, 3)), e.g. estimated from pictures sharing it: it is
    inverted exactly where see-through, its opaque part filled from around it, and the network,
    looking for what is left, paints that part and cleans what the stamp's errors leave (told
    where the opaque part is instead, with a mask or detect=False).
    detect: look for the stamp; with a mask too, what it finds is added to the mask (one more pass).
    False with no mask or stamp tells the network there is none (enlarge and denoise only).
    denoise: 1 = the model's full JPEG noise reduction; lower puts that share of what the model
    changed outside the stamp (grain, texture, noise, colour drift) back; 0 = none: the output, made
    small again, equals the input there. 0 suits pictures never JPEG-compressed (see _keep_noise).
    With a mask, its pixels start from the network's own blind removal, those the network sees
    opaque (its matte, see FILL_FROM_MATTE) are repainted from their surroundings, and the network,
    guided by the mask, refines them: a mask painted loosely around a stamp then helps as much as
    one drawn on its edges.
    inpaint: all of the mask's pixels are repainted (nothing under them is kept): for an opaque
    stamp only. Measured with the true masks of the 16 held-out previews of `desample bench --images
    ../shared/data/anime --limit 8` (desample_mask, and the same with inpaint=True): logos 33.11 dB in the stamp
    (30.51 without), but large Japanese words 16.76 (20.89) and tiled text 19.40 (25.44); 22.93 over
    all kinds (24.54): what shows through a see-through stamp is lost.
    mirror: also run on the mirrored picture and average (twice the time; measured +0.1 dB on clean
    and on stamped previews; rotations, the rest of waifu2x's 8-fold TTA, cost 0.7 dB on stamped ones).
    progress: called as progress(tiles done, tiles in this pass) after each tile of every pass
    (a picture takes 1 to 4 passes: a blind one before a mask, the mirrored one, 4x's second).
    """
    rgb = _checked(rgb, scale, dtype, denoise)
    engine = as_engine(engine)
    if engine.scale != 2:
        raise ValueError("restore() expects a 2x model")
    h, w = rgb.shape[:2]
    # Plan: what the network is told of the stamp (guide; None: it looks for it), on which picture.
    if mask is not None:
        if mask.shape != (h, w):
            raise ValueError(f"mask is {mask.shape[1]}x{mask.shape[0]} but the picture is {w}x{h}")
        mask = np.clip(mask, 0, 1).astype(np.float32)
        if stamp is None:
            rgb, mask = _prepared_by_mask(rgb, mask, engine, tile, detect, inpaint, progress)
    guide = mask
    seen_small = None
    if stamp is None and mask is None and detect and max(h, w) > SEEN_FROM:
        stamp, seen_small = stamp_seen_smaller(rgb, engine, tile)
    if stamp is not None:
        rgb, mask, guide = _prepared_by_stamp(rgb, stamp, mask, detect)
    # Passes: the 2x (or 1x) one, then 4x's second.
    first, found = _first_pass(rgb, engine, guide, scale, dtype, tile, detect, stamp is None, mirror, progress)
    if not detect:  # nothing was looked for: the stamp is what was given, if anything
        found = mask.copy() if mask is not None else np.zeros((h, w), np.float32)
    elif mask is not None:
        found = np.maximum(found, mask)  # where the stamp was treated: the given mask too
    if seen_small is not None:
        found = np.maximum(found, seen_small)
    result = _second_pass(first, engine, dtype, tile, mirror, progress) if scale == 4 else first
    del first  # at 4x the 2x picture is done with: big pictures need the memory
    if denoise < 1:  # last, so that a 4x second pass does not clean the kept grain away again
        result = _keep_noise(result, rgb, found, 1 - denoise)
    big_alpha = None
    if alpha is not None:
        big_alpha = alpha if scale == 1 else _enlarge_alpha(alpha, (result.shape[1], result.shape[0]))
    return RestoreResult(rgb=result, alpha=big_alpha, mask=found)


def _checked(rgb: np.ndarray, scale: int, dtype, denoise: float) -> np.ndarray:
    """rgb as restore works on it (uint8 kept, any float as float32), after checking the request."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, not {scale}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) picture, got shape {rgb.shape}")
    if np.dtype(dtype) not in (np.float32, np.uint8):
        raise ValueError(f"dtype must be float32 or uint8, not {dtype}")
    if not 0.0 <= denoise <= 1.0:
        raise ValueError(f"denoise must be between 0 and 1, not {denoise}")
    return rgb if rgb.dtype == np.uint8 else rgb.astype(np.float32, copy=False)


def _prepared_by_mask(rgb: np.ndarray, mask: np.ndarray, engine, tile: int, detect: bool, inpaint: bool,
                      progress) -> tuple[np.ndarray, np.ndarray]:
    """(picture, mask) with a user's mask: its pixels start from the network's own blind removal
    (what shows through a see-through stamp is kept), those the network sees opaque are repainted
    from their surroundings; with detect, what the network finds by itself joins the mask."""
    h, w = rgb.shape[:2]
    # One blind pass (not needed to repaint all of the mask with detection off): where the
    # network sees the stamp by itself, its matte, and the picture without it.
    found_blind = matte = own_removal = None
    if detect or not inpaint:
        found_blind, matte = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
        own_removal = np.empty((h, w, 3), np.float32)
        network_pass(engine, rgb, None, tile, None, own_removal, found_blind, matte_out=matte, progress=progress)
    inside = mask > 0.5
    rgb = as_float(rgb)
    if not inpaint:
        # Inside the mask start from the network's own removal: what shows through a
        # see-through stamp is kept, where a fill from the surroundings would lose it.
        np.copyto(own_removal, rgb, where=~inside[..., None])  # in our own array: no third copy
        rgb = own_removal
    del own_removal
    # Where nothing shows through (the network's matte), the mask's pixels are repainted from
    # their surroundings; then the network, guided by the mask, refines: as a guide alone
    # the mask changes little.
    if inpaint:
        opaque = np.ones((h, w), np.float32)
    else:
        opaque = np.clip((matte - FILL_FROM_MATTE) / (FILL_FULL_MATTE - FILL_FROM_MATTE), 0, 1)
    opaque = np.where(inside, opaque, 0)[..., None]
    rgb = rgb + opaque * (harmonic_fill(rgb, opaque[..., 0] > 0) - rgb)
    if detect:  # a mask paints over what detection missed: add what the network finds by itself
        mask = np.maximum(mask, (found_blind > 0.5).astype(np.float32))
    return rgb, mask


def _prepared_by_stamp(rgb: np.ndarray, stamp: tuple[np.ndarray, np.ndarray], mask: np.ndarray | None,
                       detect: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(picture, mask of what is left to paint, guide) with a known stamp: inverted exactly where
    see-through, its opaque part (and a user's mask) filled from around it."""
    h, w = rgb.shape[:2]
    matte, color = stamp
    if matte.shape != (h, w) or color.shape != (h, w, 3):
        raise ValueError(f"the stamp is {matte.shape[1]}x{matte.shape[0]} but the picture is {w}x{h}")
    user_mask = mask
    rgb, mask = unblend(rgb, matte, color)
    if user_mask is not None:  # painted by hand over what the stamp missed: painted like its opaque part
        mask = np.maximum(mask, user_mask)
    # Under the opaque part nothing shows through: carry the surroundings' colours in (measured:
    # +7 dB inside an opaque SAMPLE over leaving it to the network alone), then the network refines.
    rgb = harmonic_fill(rgb, mask > 0)
    # Then the network looks for the stamp itself rather than being told it is exactly the
    # opaque part: it paints that part (the fill leaves a smooth blob it sees) and also takes
    # away what an estimate's errors leave of the rest. Measured at 2x inside the stamp
    # (`desample bench --shared 4 --limit 16`, blind removal / told / looking): see-through
    # glowing words 22.11 / 24.24 / 24.43, words 20.43 / 23.14 / 23.45, 8 real sets of 4 19.50 /
    # 21.26 / 21.32, of 8 19.37 / 21.86 / 21.96; with the true stamp (glowing words) 27.20 / 27.50;
    # glowing words of 8 24.80 both (docs/shared_stamp.md).
    guide = mask if user_mask is not None or not detect else None
    return rgb, mask, guide


def _first_pass(rgb: np.ndarray, engine, guide: np.ndarray | None, scale: int, dtype, tile: int, detect: bool,
                blind: bool, mirror: bool, progress) -> tuple[np.ndarray, np.ndarray]:
    """(the picture at 1x or 2x, where the network found the stamp) from one pass (and its mirror).
    blind: no stamp was given; then a detection over WHOLESALE of the picture is not believed."""
    h, w = rgb.shape[:2]
    found = np.zeros((h, w), np.float32)
    first_scale = 1 if scale == 1 else 2
    first = np.empty((h * first_scale, w * first_scale, 3), dtype)
    no_stamp = not detect and guide is None
    outs = [None, first, found] if scale == 1 else [first, None, found]
    network_pass(engine, rgb, guide, tile, *outs, no_stamp=no_stamp, progress=progress)
    if mirror:
        _mirrored_pass(engine, rgb, guide, tile, outs, no_stamp, progress=progress)
    if detect and guide is None and blind and (found > 0.5).mean() > WHOLESALE:
        # No stamp covers that much of a picture: what was found is the picture itself (noise, a
        # texture); enlarge and denoise it as one without a stamp.
        found[:] = 0
        network_pass(engine, rgb, None, tile, *outs[:2], None, no_stamp=True, progress=progress)
        if mirror:
            _mirrored_pass(engine, rgb, None, tile, [*outs[:2], None], True, progress=progress)
    return first, found


def _second_pass(first: np.ndarray, engine, dtype, tile: int, mirror: bool, progress) -> np.ndarray:
    """4x = 2x twice; the second pass is told "there is no stamp" (guide given, all zero)."""
    h, w = first.shape[0] // 2, first.shape[1] // 2
    result = np.empty((h * 4, w * 4, 3), dtype)
    network_pass(engine, first, None, tile, result, None, None, no_stamp=True, progress=progress)
    if mirror:
        _mirrored_pass(engine, first, None, tile, [result, None, None], True, progress=progress)
    return result


def stamp_seen_smaller(rgb: np.ndarray, engine, tile: int) -> tuple[tuple[np.ndarray, np.ndarray] | None, np.ndarray | None]:
    """((matte, colour), found) of a stamp the network sees in rgb made small (long side SEEN_AT),
    brought to rgb's size; (None, None) when it sees none. The colour: from the blend, W = (J - (1 - a) C) / a
    with C the network's clean picture, smoothed where the matte is, so an exact inverse blend can
    follow at full size."""
    h, w = rgb.shape[:2]
    k = SEEN_AT / max(h, w)
    size = (max(engine.multiple, round(w * k)), max(engine.multiple, round(h * k)))
    small = np.asarray(Image.fromarray(rgb if rgb.dtype == np.uint8 else (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8))
                          .resize(size, Image.BOX), np.float32) / 255.0
    found = np.zeros(small.shape[:2], np.float32)
    matte = np.zeros(small.shape[:2], np.float32)
    clean = np.empty_like(small)
    network_pass(engine, small, None, tile, None, clean, found, matte_out=matte)
    if (found > 0.5).mean() < SEEN_MIN_SHARE or (found > 0.5).mean() > WHOLESALE:
        return None, None

    matte = matte * dilate(found > 0.5, 2)
    a = np.clip(matte, 0, 1)[..., None]
    colour = np.clip((small - (1 - a) * clean) / np.maximum(a, 1e-3), 0, 1)
    weight = (a[..., 0] > 0.1).astype(np.float32) * a[..., 0]
    radius = 3
    smooth = box_mean(colour * weight[..., None], radius) / np.maximum(box_mean(weight, radius), 1e-6)[..., None]

    def big(x: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(x.astype(np.float32), mode="F").resize((w, h), Image.BILINEAR), np.float32)
    matte_big = np.clip(big(matte), 0, 1)
    colour_big = np.clip(np.stack([big(smooth[..., c]) for c in range(3)], axis=2), 0, 1)
    return (matte_big, colour_big), (big(found) > 0.5).astype(np.float32)


def detect_stamp(rgb: np.ndarray, engine, tile: int = 512) -> np.ndarray:
    """The network's stamp probability (H, W) in [0,1] for rgb (H, W, 3), blind (one LR pass, no enlargement)."""
    found = np.zeros(rgb.shape[:2], np.float32)
    network_pass(as_engine(engine), rgb, None, tile, None, None, found)
    return found
