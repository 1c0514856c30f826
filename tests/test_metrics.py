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


def test_ciede2000_matches_sharma_s_test_data():
    """Pairs from Sharma, Wu & Dalal's CIEDE2000 test data (their table 1)."""
    from desample.metrics import ciede2000

    pairs = [  # (L, a, b), (L, a, b), dE00
        ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
        ((50.0, 3.1571, -77.2803), (50.0, 0.0, -82.7485), 2.8615),
        ((50.0, 2.8361, -74.0200), (50.0, 0.0, -82.7485), 3.4412),
        ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
        ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
        ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ]
    lab1 = np.array([p[0] for p in pairs])
    lab2 = np.array([p[1] for p in pairs])
    np.testing.assert_allclose(ciede2000(lab1, lab2), [p[2] for p in pairs], atol=1e-4)
    np.testing.assert_allclose(ciede2000(lab2, lab1), [p[2] for p in pairs], atol=1e-4)  # symmetric


def test_delta_e_sees_a_colour_shift_more_than_noise_of_the_same_size():
    from desample.metrics import delta_e, srgb_to_lab

    np.testing.assert_allclose(srgb_to_lab(np.array([1.0, 1.0, 1.0])), [100, 0, 0], atol=0.01)
    np.testing.assert_allclose(srgb_to_lab(np.array([1.0, 0.0, 0.0])), [53.24, 80.09, 67.20], atol=0.02)
    rng = np.random.default_rng(0)
    pic = rng.uniform(0.2, 0.8, (32, 32, 3))
    assert delta_e(pic, pic) == 0
    shifted = pic + np.array([0.03, -0.03, 0.0])  # reddish cast
    grey_noise = pic + rng.choice([-1, 1], (32, 32, 1)) * 0.03  # as strong, no hue change
    assert delta_e(pic, shifted) > 1.5 * delta_e(pic, grey_noise)
