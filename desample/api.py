"""The one request path: what `desample clean`, the web page and Python callers all run.

    from desample.api import CleanOptions, clean, load_engine
    engine = load_engine()                              # the shipped model, ONNX Runtime
    result = clean("preview.jpg", engine, CleanOptions(scale=2))
    result.rgb                                          # (2H, 2W, 3) uint8; result.alpha, result.mask

A request is a picture plus what the user knows: a painted mask, a stamp file, or nothing. The
decisions that turn those into `core.restore`'s arguments (a mask's own alpha, an empty painting,
where a known stamp sits, JPEG noise reduction only for pictures that had JPEG noise) live here,
once, so the CLI and the web cannot disagree.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from .core import RestoreResult, fit_mask, restore
from .engine.runtime import load_engine
from .imageio import is_lossless, load_image

__all__ = ["CleanOptions", "clean", "load_engine", "read_mask", "RestoreResult"]

Source = str | os.PathLike | BinaryIO | bytes


@dataclass(frozen=True)
class CleanOptions:
    scale: int = 2  # 1, 2 or 4
    denoise: float | None = None  # JPEG noise reduction 0..1; None: 1, or 0 for a picture never JPEG-compressed
    detect: bool = True  # look for the stamp (False: enlarge and denoise only, or use only the mask / stamp given)
    inpaint: bool = False  # repaint everything the mask covers instead of inverting a see-through stamp
    tta: bool = False  # average with the mirrored picture (2x the time)
    tile: int = 512  # input pixels per tile side

    def __post_init__(self):
        if self.denoise is not None and not 0 <= self.denoise <= 1:
            raise ValueError(f"denoise must be between 0 and 1, not {self.denoise}")


def _stream(source: Source):
    return io.BytesIO(source) if isinstance(source, bytes) else source


def read_mask(source: Source, max_pixels: int | None = None) -> np.ndarray | None:
    """A painted mask as (H, W) float32 in [0,1]: its grey level times its own alpha (a painting on a
    transparent layer); None when nothing is painted."""
    rgb, alpha = load_image(_stream(source), as_uint8=True, max_pixels=max_pixels, name="the mask")
    m = rgb.astype(np.float32).mean(axis=2) / 255.0
    if alpha is not None:
        m *= alpha
    return m if m.max() > 0 else None


def clean(
    picture: Source | tuple[np.ndarray, np.ndarray | None],
    engine,
    options: CleanOptions = CleanOptions(),  # noqa: B008 (frozen: shared safely)
    *,
    mask: np.ndarray | None = None,
    stamp=None,
    offset: tuple[int, int] | None = None,
    lossless: bool | None = None,
    max_pixels: int | None = None,
    progress=None,
) -> RestoreResult:
    """Clean one picture and enlarge it; output uint8.

    picture: a path, file object or bytes (read with `imageio.load_image`: EXIF, ICC, alpha), or an
    already-read (rgb uint8 (H, W, 3), alpha or None) pair with `lossless` saying whether it was ever
    JPEG-compressed. mask: the user's (h, w) mask in [0,1] (from `read_mask`), fitted to the picture.
    stamp: a known `StampEstimate` (from `desample estimate` or `--shared`), placed at `offset` or
    where it fits best.
    """
    if isinstance(picture, tuple):
        rgb, alpha = picture
    else:
        source = _stream(picture)
        rgb, alpha = load_image(source, as_uint8=True, max_pixels=max_pixels)
        if lossless is None:
            lossless = is_lossless(source)  # a file object is read again from its start
    fitted = fit_mask(mask, rgb.shape[:2]) if mask is not None else None
    placed = None
    if stamp is not None:
        from .stamps.estimate import locate

        placed = stamp.placed(rgb.shape[:2], offset if offset is not None else locate(stamp, rgb))
    denoise = options.denoise
    if denoise is None:  # a picture never JPEG-compressed has no JPEG noise: "reducing" it only shifts colours
        denoise = 0.0 if lossless else 1.0
    # A stamp read off many pictures is used as told, not looked for again: looking, the network
    # marks the pictures' own text (stamps.estimate.StampEstimate.look_after).
    detect = options.detect and (stamp is None or stamp.look_after)
    return restore(rgb, engine, scale=options.scale, alpha=alpha, mask=fitted, tile=options.tile, dtype=np.uint8,
                   stamp=placed, detect=detect, denoise=denoise, inpaint=options.inpaint, mirror=options.tta,
                   progress=progress)
