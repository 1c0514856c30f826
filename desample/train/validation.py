"""A fixed validation set (held-out pictures, every stamp kind) and its metrics."""

from __future__ import annotations

import math

import numpy as np

from ..core import restore
from ..data.pairs import Preview
from ..metrics import mask_iou, picture_metrics
from ..model.net import bicubic


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
