import numpy as np

from desample.metrics import enlarge_mask, mask_iou, psnr, psnr_y, ssim


def test_psnr_known_values():
    a = np.full((16, 16, 3), 0.5, np.float32)
    assert psnr(a, a) == float("inf")
    assert abs(psnr(a, a + 0.1) - 20.0) < 1e-4  # MSE 0.01 -> 20 dB
    where = np.zeros((16, 16), bool)
    where[:4] = True
    b = a.copy()
    b[4:] += 0.1
    assert psnr(b, a, where) == float("inf")
    assert abs(psnr(b, a, ~where) - 20.0) < 1e-4


def test_psnr_y_and_ssim():
    rng = np.random.default_rng(0)
    a = rng.random((40, 40, 3)).astype(np.float32)
    assert abs(ssim(a, a) - 1.0) < 1e-9
    noisy = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    assert ssim(noisy, a) < 0.95
    # A grey offset of 0.1 in RGB is 0.1 * 219/255 in Y.
    g = np.full((20, 20, 3), 0.4)
    assert abs(psnr_y(g + 0.1, g) - (-20 * np.log10(0.1 * 219 / 255))) < 1e-4


def test_masks():
    m = np.zeros((4, 4), bool)
    m[1, 1] = True
    assert mask_iou(m, m) == 1.0
    assert mask_iou(m, ~m) == 0.0
    big = enlarge_mask(m, 2, dilate=0)
    assert big.shape == (8, 8) and big.sum() == 4
    assert enlarge_mask(m, 2, dilate=1).sum() == 16
