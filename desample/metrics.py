"""Picture quality metrics on (H, W, 3) float arrays in [0,1] (numpy; shared by training and bench)."""

from __future__ import annotations

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float:
    """PSNR in dB; `where` (H, W) bool restricts it to some pixels. inf for identical pictures."""
    diff = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    if where is not None:
        if not where.any():
            return float("nan")
        diff = diff[where]
    mse = float(diff.mean())
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma in [0,1] (16-235 range scaled back to [0,1] like MATLAB's rgb2ycbcr / 255)."""
    return (16.0 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def shave(a: np.ndarray, border: int) -> np.ndarray:
    return a[border:-border, border:-border] if border > 0 else a


def psnr_y(a: np.ndarray, b: np.ndarray, border: int = 4) -> float:
    return psnr(shave(to_y(a), border)[..., None], shave(to_y(b), border)[..., None])


def _gauss_filter(x: np.ndarray, sigma: float = 1.5, radius: int = 5) -> np.ndarray:
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-(t**2) / (2 * sigma**2))
    k /= k.sum()
    # Separable 'valid' convolution as a sum of shifted slices (vectorised, no Python loop per row).
    n = 2 * radius + 1
    rows = sum(k[i] * x[i : x.shape[0] - n + 1 + i] for i in range(n))
    return sum(k[i] * rows[:, i : rows.shape[1] - n + 1 + i] for i in range(n))


def ssim(a: np.ndarray, b: np.ndarray, border: int = 4) -> float:
    """SSIM on the Y channel (Wang et al. 2004, 11x11 Gaussian window, sigma 1.5)."""
    x = shave(to_y(a), border).astype(np.float64)
    y = shave(to_y(b), border).astype(np.float64)
    c1, c2 = 0.01**2, 0.03**2
    mx, my = _gauss_filter(x), _gauss_filter(y)
    sxx = _gauss_filter(x * x) - mx**2
    syy = _gauss_filter(y * y) - my**2
    sxy = _gauss_filter(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return float(s.mean())


def mask_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two bool masks; 1.0 when both are empty."""
    union = np.logical_or(pred, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, truth).sum() / union)


def mask_f1(pred: np.ndarray, truth: np.ndarray) -> float:
    tp = np.logical_and(pred, truth).sum()
    denom = pred.sum() + truth.sum()
    return 1.0 if denom == 0 else float(2 * tp / denom)


def enlarge_mask(mask: np.ndarray, scale: int, dilate: int = 2) -> np.ndarray:
    """An LR mask at HR size, dilated by a few HR pixels so the stamp's blurred edge counts as inside."""
    from PIL import Image, ImageFilter

    m = np.repeat(np.repeat(mask.astype(np.uint8), scale, 0), scale, 1) * 255
    im = Image.fromarray(m)
    if dilate > 0:
        im = im.filter(ImageFilter.MaxFilter(2 * dilate + 1))
    return np.asarray(im) > 127


def picture_metrics(out: np.ndarray, truth: np.ndarray, lr_mask: np.ndarray, scale: int) -> dict[str, float]:
    """Whole-picture and inside/outside-the-stamp numbers for one enlarged result."""
    inside = enlarge_mask(lr_mask, scale)
    return {
        "psnr": psnr(out, truth),
        "psnr_y": psnr_y(out, truth),
        "ssim": ssim(out, truth),
        "psnr_in": psnr(out, truth, inside),
        "psnr_out": psnr(out, truth, ~inside),
    }
