"""Picture quality metrics on (H, W, 3) float arrays in [0,1] (numpy; shared by training and bench)."""

from __future__ import annotations

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float:
    """PSNR in dB; `where` (H, W) bool restricts it to some pixels. inf for identical pictures."""
    # float32 differences of values in [0,1] are exact to ~1e-7; the mean is summed in float64.
    diff = np.subtract(a, b, dtype=np.float32)
    diff *= diff
    if where is not None:
        if not where.any():
            return float("nan")
        diff = diff[where]
    mse = float(diff.mean(dtype=np.float64))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma in [0,1] (16-235 range scaled back to [0,1] like MATLAB's rgb2ycbcr / 255)."""
    return (16.0 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def shave(a: np.ndarray, border: int) -> np.ndarray:
    return a[border:-border, border:-border] if border > 0 else a


def psnr_y(a: np.ndarray, b: np.ndarray, border: int = 4) -> float:
    return psnr(shave(to_y(a), border)[..., None], shave(to_y(b), border)[..., None])


def _gauss_filter(x: np.ndarray, sigma: float = 1.5, radius: int = 5) -> np.ndarray:
    """Separable Gaussian, 'valid' part only (no padded border)."""
    from scipy.ndimage import correlate1d

    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-(t**2) / (2 * sigma**2))
    k /= k.sum()
    rows = correlate1d(x, k, axis=0, mode="constant")[radius:-radius]
    return correlate1d(rows, k, axis=1, mode="constant")[:, radius:-radius]


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


# sRGB (linear) -> XYZ relative to the D65 white point.
_RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]]) / np.array([[0.95047], [1.0], [1.08883]])


def srgb_to_lab(rgb: np.ndarray, dtype=np.float32) -> np.ndarray:
    """CIE L*a*b* (D65) of sRGB values in [0,1], (..., 3). float32 by default (L* to ~1e-4, plenty
    for mean colour differences, and half the memory traffic of float64 on whole pictures)."""
    c = np.clip(np.asarray(rgb, dtype), 0, 1)
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _RGB_TO_XYZ.T.astype(dtype)
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (Sharma, Wu & Dalal 2005) of L*a*b* arrays (..., 3); kL = kC = kH = 1.
    Computed in the inputs' precision (float32 or float64)."""
    dtype = np.result_type(lab1, lab2, np.float32)
    l1, a1, b1 = np.moveaxis(np.asarray(lab1, dtype), -1, 0)
    l2, a2, b2 = np.moveaxis(np.asarray(lab2, dtype), -1, 0)
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_mean**7 / (c_mean**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    dl, dc = l2 - l1, c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0, dh)
    dhh = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    l_mean, cp_mean = (l1 + l2) / 2, (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_mean = np.where(np.abs(h1p - h2p) > 180, np.where(h_sum < 360, h_sum + 360, h_sum - 360), h_sum) / 2
    h_mean = np.where(c1p * c2p == 0, h_sum, h_mean)
    t = (1 - 0.17 * np.cos(np.radians(h_mean - 30)) + 0.24 * np.cos(np.radians(2 * h_mean))
         + 0.32 * np.cos(np.radians(3 * h_mean + 6)) - 0.20 * np.cos(np.radians(4 * h_mean - 63)))
    sl = 1 + 0.015 * (l_mean - 50) ** 2 / np.sqrt(20 + (l_mean - 50) ** 2)
    sc = 1 + 0.045 * cp_mean
    sh = 1 + 0.015 * cp_mean * t
    rt = (-2 * np.sqrt(cp_mean**7 / (cp_mean**7 + 25.0**7))
          * np.sin(np.radians(60 * np.exp(-(((h_mean - 275) / 25) ** 2)))))
    return np.sqrt((dl / sl) ** 2 + (dc / sc) ** 2 + (dhh / sh) ** 2 + rt * (dc / sc) * (dhh / sh))


def delta_e(a: np.ndarray, b: np.ndarray) -> float:
    """Mean CIEDE2000 difference of two sRGB pictures (H, W, 3) in [0,1]: how far the colours are off."""
    return float(ciede2000(srgb_to_lab(a), srgb_to_lab(b)).mean(dtype=np.float64))


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
        "delta_e": delta_e(out, truth),
    }
