"""A fixed validation set (held-out pictures, every stamp kind) and its metrics."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from ..core import bicubic, restore
from ..data.pairs import Preview, flatten_alpha, make_preview
from ..metrics import mask_iou, picture_metrics
from ..stamps.synthesis import KINDS

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


def baseline_metrics(previews: list[Preview], scale: int = 2) -> list[dict[str, float]]:
    """Bicubic enlargement of each stamped preview, scored: the same at every validation of a run,
    so a run computes it once (it is half the cost of scoring)."""
    return [picture_metrics(bicubic(pv.stamped, scale), pv.hr, pv.mask, scale) for pv in previews]


def evaluate(model, previews: list[Preview], scale: int = 2, guided: bool = False,
             baseline: list[dict[str, float]] | None = None) -> dict[str, float]:
    """Mean metrics of the model and of bicubic enlargement of the stamped input (`baseline`, from
    baseline_metrics, when already known), and mask IoU."""
    if baseline is None:
        baseline = baseline_metrics(previews, scale)
    rows = []
    for pv, b in zip(previews, baseline, strict=True):
        res = restore(pv.stamped, model, scale=scale, mask=pv.alpha if guided else None, tile=512, detect=not guided)
        m = picture_metrics(res.rgb, pv.hr, pv.mask, scale)
        m.update({f"bicubic_{k}": v for k, v in b.items()})
        m["mask_iou"] = mask_iou(res.mask > 0.5, pv.mask)
        rows.append(m)
    keys = rows[0].keys()
    return {k: float(np.mean([r[k] for r in rows if not math.isnan(r[k]) and not math.isinf(r[k])])) for k in keys}


class Scorer:
    """A validation set and its bicubic baseline, scored once: call it with each model to score."""

    def __init__(self, previews: list[Preview], scale: int = 2):
        self.previews, self.scale = previews, scale
        self._baseline: list[dict[str, float]] | None = None

    def __call__(self, model, guided: bool = False) -> dict[str, float]:
        if self._baseline is None:
            self._baseline = baseline_metrics(self.previews, self.scale)
        return evaluate(model, self.previews, self.scale, guided=guided, baseline=self._baseline)
