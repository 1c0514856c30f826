"""restore(): the one function the CLI, the web page, the benchmark and the tests call.

Picture in, clean picture out: stamp detection and removal, JPEG noise reduction, 1x/2x/4x,
alpha kept (enlarged separately), tiled so any size runs in bounded memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .engine.tiling import run_tiled
from .model.net import DesampleNet

SCALES = (1, 2, 4)


@dataclass
class RestoreResult:
    rgb: np.ndarray  # (sH, sW, 3) float32 in [0,1]
    alpha: np.ndarray | None  # (sH, sW) float32 or None
    mask: np.ndarray  # (H, W) float32 in [0,1]: the detected (or given) stamp at input size

    @property
    def stamp_coverage(self) -> float:
        """Fraction of the input's pixels found stamped."""
        return float((self.mask > 0.5).mean())


def _guide(mask: np.ndarray | None, h: int, w: int) -> torch.Tensor:
    """(1, 2, h, w): the known matte/mask and a "guide given" flag; zeros when nothing is known."""
    g = torch.zeros(1, 2, h, w)
    if mask is not None:
        if mask.shape != (h, w):
            raise ValueError(f"mask is {mask.shape[1]}x{mask.shape[0]} but the picture is {w}x{h}")
        g[0, 0] = torch.from_numpy(np.clip(mask, 0, 1).astype(np.float32))
        g[0, 1] = 1.0
    return g


def _run(model: DesampleNet, rgb: np.ndarray, guide: torch.Tensor, tile: int) -> tuple[torch.Tensor, ...]:
    """One pass of the network, tiled: (sr, lr, mask) for an (H, W, 3) picture."""
    cfg = model.config
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].float()

    def fn(t):
        out = model(t[:, :3], t[:, 3:])
        return out.sr, out.lr, torch.sigmoid(out.mask_logits)

    sr, lr, mask = run_tiled(fn, torch.cat([x, guide], 1), scales=(cfg.scale, 1, 1), multiple=cfg.multiple, border=cfg.border, tile=tile)
    return sr, lr, mask


def _enlarge_alpha(alpha: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    im = Image.fromarray(alpha.astype(np.float32), mode="F").resize(size, Image.BICUBIC)
    return np.clip(np.asarray(im, np.float32), 0, 1)


@torch.inference_mode()
def restore(
    rgb: np.ndarray,
    model: DesampleNet,
    scale: int = 2,
    alpha: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    tile: int = 512,
) -> RestoreResult:
    """Remove the stamp from rgb (H, W, 3) float32 in [0,1] and enlarge it by `scale` (1, 2 or 4).

    mask: optional (H, W) matte or mask of the stamp in [0,1], e.g. drawn by the user.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, not {scale}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) picture, got shape {rgb.shape}")
    if model.config.scale != 2:
        raise ValueError("restore() expects a 2x model")
    model.eval()
    h, w = rgb.shape[:2]
    sr, lr, found = _run(model, rgb, _guide(mask, h, w), tile)
    if scale == 1:
        out = lr
    elif scale == 2:
        out = sr
    else:
        # 4x = 2x twice; the second pass is told "there is no stamp" (guide given, all zero).
        first = sr.clamp(0, 1)[0].permute(1, 2, 0).numpy()
        out, _, _ = _run(model, first, _guide(np.zeros(first.shape[:2], np.float32), *first.shape[:2]), tile)
    result = out.clamp(0, 1)[0].permute(1, 2, 0).numpy()
    big_alpha = None
    if alpha is not None:
        big_alpha = alpha if scale == 1 else _enlarge_alpha(alpha, (result.shape[1], result.shape[0]))
    return RestoreResult(rgb=np.ascontiguousarray(result), alpha=big_alpha, mask=found[0, 0].numpy())


def bicubic(rgb: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic enlargement (PyTorch's kernel, as the model's own base), the baseline to beat."""
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].float()
    y = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)
    return y[0].permute(1, 2, 0).numpy()
