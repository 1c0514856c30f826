"""The fixed previews a model is scored on: each held-out picture, whole, made into a preview of a
typical size and stamped with a few kinds of stamp, the same ones at every validation and in the
benchmark.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..stamps.synthesis import KINDS
from .pairs import Preview, flatten_alpha, make_preview

VAL_LR_LONG = 330  # the size of a typical preview


def preview_size_hr(picture: Image.Image, scale: int, lr_long: int = VAL_LR_LONG) -> Image.Image:
    """The whole picture as the HR truth of a preview whose long side is at most lr_long."""
    w, h = picture.size
    k = min(1.0, scale * lr_long / max(w, h))
    tw, th = max(scale, int(w * k) // scale * scale), max(scale, int(h * k) // scale * scale)
    return picture.resize((tw, th), Image.BOX) if (tw, th) != (w, h) else picture


def build_validation_set(pictures: list[Image.Image], scale: int = 2, kinds_per_picture: int = 2, seed: int = 1234,
                         lr_long: int = VAL_LR_LONG) -> list[Preview]:
    """Deterministic previews (long side at most lr_long): each picture stamped with `kinds_per_picture`
    kinds, cycling over all kinds."""
    out = []
    for i, pic in enumerate(pictures):
        hr = preview_size_hr(flatten_alpha(pic), scale, lr_long)
        for j in range(kinds_per_picture):
            kind = KINDS[(i * kinds_per_picture + j) % len(KINDS)]
            out.append(make_preview(hr, np.random.default_rng(seed + 100 * i + j), scale, kind=kind))
    return out
