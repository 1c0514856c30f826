import numpy as np
import pytest

from desample.data.procedural import anime_picture
from desample.stamps import fonts
from desample.stamps.synthesis import KINDS, MASK_THRESHOLD, apply_stamp, classic_sample_stamp, make_stamp, over


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_stamps_with_an_exact_matte(kind):
    h, w = 330, 233
    clean = np.asarray(anime_picture(w, h, seed=1), np.float32) / 255.0
    stamp = make_stamp(h, w, np.random.default_rng(5), kind=kind)
    assert stamp.kind == kind
    assert stamp.alpha.shape == (h, w) and stamp.color.shape == (h, w, 3)
    assert 0.0 <= stamp.alpha.min() and stamp.alpha.max() <= 1.0
    assert 0.0 <= stamp.color.min() and stamp.color.max() <= 1.0
    assert stamp.mask.sum() > 20, "the stamp left no visible mark"
    stamped = apply_stamp(clean, stamp)
    # The composite is exactly J = a*W + (1-a)*I, so I can be recovered where a < 1.
    a = stamp.alpha[..., None]
    np.testing.assert_allclose(stamped, a * stamp.color + (1 - a) * clean, atol=1e-6)
    see_through = stamp.alpha < 0.9
    recovered = (stamped - a * stamp.color) / (1 - a)
    np.testing.assert_allclose(recovered[see_through], clean[see_through], atol=1e-4)
    # Outside the mask the picture changes by at most the threshold's worth.
    assert np.abs(stamped - clean)[~stamp.mask].max() <= MASK_THRESHOLD + 1e-6
    np.testing.assert_array_equal(stamp.mask, stamp.alpha > MASK_THRESHOLD)


def test_over_equals_stamping_twice():
    rng = np.random.default_rng(0)
    img = rng.random((4, 4, 3)).astype(np.float32)
    a1, c1 = rng.random((4, 4)).astype(np.float32), rng.random((4, 4, 3)).astype(np.float32)
    a2, c2 = rng.random((4, 4)).astype(np.float32), rng.random((4, 4, 3)).astype(np.float32)
    two_steps = a2[..., None] * c2 + (1 - a2[..., None]) * (a1[..., None] * c1 + (1 - a1[..., None]) * img)
    a, c = over(a2, c2, a1, c1)
    np.testing.assert_allclose(a[..., None] * c + (1 - a[..., None]) * img, two_steps, atol=1e-5)


def test_stamps_are_reproducible_from_the_seed():
    s1 = make_stamp(120, 160, np.random.default_rng(42))
    s2 = make_stamp(120, 160, np.random.default_rng(42))
    np.testing.assert_array_equal(s1.alpha, s2.alpha)


def test_japanese_words_fall_back_to_latin_without_a_cjk_font(monkeypatch):
    latin, _ = fonts.available_fonts()
    monkeypatch.setattr("desample.stamps.synthesis.available_fonts", lambda: (latin, ()))
    stamp = make_stamp(200, 200, np.random.default_rng(1), kind="word_jp")
    assert stamp.mask.sum() > 20


def test_no_font_at_all_still_stamps(monkeypatch):
    monkeypatch.setattr("desample.stamps.synthesis.available_fonts", lambda: ((), ()))
    for kind in KINDS:
        assert make_stamp(160, 160, np.random.default_rng(2), kind=kind).mask.any()


def test_a_glow_asked_for_is_always_drawn():
    from desample.ops import dilate
    from desample.stamps.synthesis import style_shape

    shape = np.zeros((120, 160), np.float32)
    shape[50:70, 40:120] = 1.0
    ring = dilate(shape > 0, 3) & (shape == 0)  # just outside the word
    hard_edged = 0
    for seed in range(20):
        plain, _ = style_shape(shape, np.random.default_rng(seed), "word")
        glowing, _ = style_shape(shape, np.random.default_rng(seed), "word", glow=True)
        hard_edged += plain[ring].min() < 0.01  # no glow, outline or shadow drawn
        assert glowing[ring].min() > 0.05
    assert hard_edged >= 3


def test_preview_stamps_are_see_through_words():
    from desample.stamps.synthesis import preview_stamp

    opacities = []
    for seed in range(8):
        kind = "word" if seed % 2 else "word_jp"
        stamp = preview_stamp(330, 233, np.random.default_rng(seed), kind)
        assert stamp.kind == kind and stamp.mask.any()
        opacities.append(stamp.alpha.max())
    assert 0.1 < min(opacities) and max(opacities) <= 0.85 + 1e-6 and max(opacities) - min(opacities) > 0.2


def test_classic_stamp_is_a_big_semi_transparent_word():
    stamp = classic_sample_stamp(330, 233)
    assert 0.08 < stamp.mask.mean() < 0.6
    assert stamp.alpha.max() <= 0.6 + 1e-6


@pytest.mark.parametrize("kind", ["word", "word_jp"])
def test_some_big_words_run_vertically_and_the_others_stay_as_they_were(kind, monkeypatch):
    from desample.stamps import synthesis

    def draw(share):
        monkeypatch.setattr(synthesis, "VERTICAL_SHARE", share)
        return [make_stamp(330, 233, np.random.default_rng(seed), kind, extra=False).alpha for seed in range(60)]

    level, some = draw(0.0), draw(0.3)
    changed = [b for a, b in zip(level, some, strict=True) if not np.array_equal(a, b)]
    assert 8 <= len(changed) <= 30  # ~30% of the half that is not level
    # Columns: ink on more rows than columns (level words: the other way round; a column repeated
    # beside itself comes closest to square).
    inked = [(a > 0.3 * a.max()) for a in changed]
    tall = [ink.any(axis=1).sum() / ink.any(axis=0).sum() for ink in inked]
    assert min(tall) > 1.1 and np.median(tall) > 2


def test_the_train_extra_brings_a_japanese_font_and_a_condensed_face(monkeypatch):
    # As on a bare machine: no system fonts at all, only what the installed packages carry.
    monkeypatch.setattr(fonts, "FONT_DIRS", [])
    fonts.available_fonts.cache_clear()
    try:
        latin, cjk = fonts.available_fonts()
        assert any("ipaex" in p.lower() for p in cjk), "pip install -e '.[train]' should bring matplotlib-fontja's IPAexGothic"
        assert any("fjalla" in p.lower() for p in fonts.condensed_fonts())
        stamp = make_stamp(330, 233, np.random.default_rng(5), kind="word_jp", extra=False)
        assert stamp.mask.sum() > 200
    finally:
        fonts.available_fonts.cache_clear()


def test_training_refuses_to_start_without_a_japanese_font(monkeypatch, tmp_path, capsys):
    from desample.cli import main

    latin = fonts.available_fonts()[0]
    monkeypatch.setattr(fonts, "available_fonts", lambda: (latin, ()))
    rc = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--steps", "1"])
    assert rc == 2
    assert "no Japanese (CJK) font" in capsys.readouterr().err


def test_real_preview_stamps_are_one_big_word_near_the_middle_some_nearly_opaque():
    from desample.stamps.synthesis import real_preview_stamp

    tops = []
    for seed in range(24):
        stamp = real_preview_stamp(330, 233, np.random.default_rng(seed))
        cols = np.nonzero(stamp.mask.any(axis=0))[0]
        rows = np.nonzero(stamp.mask.any(axis=1))[0]
        assert stamp.kind == "real"
        tops.append(stamp.alpha.max())
        assert 0.45 * 0.9 <= stamp.alpha.max() <= 1.0
        assert (cols[-1] - cols[0]) / 233 > 0.55  # across most of the width
        assert 0.2 * 330 < rows.mean() < 0.75 * 330  # about the middle
    assert 2 <= sum(t > 0.95 for t in tops) <= 14 and sum(t < 0.9 for t in tops) >= 10  # most see-through, some solid
