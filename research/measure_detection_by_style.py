"""Which stamps the blind detector misses: large words (Latin and Japanese) drawn in one style at a
time (plain fill, fill + glow, fill + outline, and the previews' see-through glowing word of
`synthesis.preview_stamp`, its peak opacity set) and one opacity, on the held-out pictures of a folder
(training's own validation split, first 12), shrunk to previews and JPEG'd. Prints, per style and
opacity, the detector's recall (stamp probability > 0.5 where the matte is over 0.1), the network's
matte against the true one there (mean over mean: what `--shared` mixes in as its hints), and the
network's LR removal, PSNR where the stamp is see-through (matte under 0.7).

    python research/measure_detection_by_style.py ../shared/data/anime [STYLE ...] [weights.safetensors ...]

Session 19, the step-30,750 weights: recall plain 0.12 / 0.29 / 0.38 / 0.45 at opacity 0.2 / 0.35 /
0.5 / 0.8, with glow 0.20 / 0.45 / 0.64 / 0.85, with an outline 0.50 / 0.66 / 0.75 / 0.76: a plain
coloured word, clearly visible (a purple 見本 at a = 0.45 over a white blouse), can go unseen.
Session 33, `preview` (the style issue 5 measures), shipped step-36,000 weights -> run 59 at 38,500
(2,500 steps with 30% of stamped pictures under such words): recall 0.36 / 0.54 / 0.60 / 0.68 ->
0.45 / 0.64 / 0.75 / 0.86, matte 0.49 / 0.61 / 0.63 / 0.61 -> 0.60 / 0.68 / 0.71 / 0.73 of the true one.
"""

import sys

import numpy as np

STYLES = ("plain", "glow", "outline", "preview")
OPACITIES = (0.2, 0.35, 0.5, 0.8)


def styled_word(h: int, w: int, rng: np.random.Generator, style: str, opacity: float):
    """A large word stamp (Latin or Japanese by rng) in one style, as synthesis draws them."""
    from desample.stamps import synthesis as S

    if style == "preview":  # its own glow, outline and shadow; opacity = the matte's peak
        stamp = S.preview_stamp(h, w, rng)
        return S.Stamp(alpha=stamp.alpha * (opacity / max(float(stamp.alpha.max()), 1e-6)), color=stamp.color, kind=stamp.kind)
    shape = S._shape("word" if rng.random() < 0.5 else "word_jp", h, w, rng)
    fill = S._random_color(rng)
    layers = []
    if style == "glow":
        layers.append((np.clip(S._blur(S._dilate(shape, 1), 4.0) * 1.8, 0, 1) * 0.6, fill))
    if style == "outline":
        layers.append((S._dilate(shape, 2) * 0.9, S._contrast(fill, rng)))
    layers.append((shape * 0.9, fill))
    alpha, color = np.zeros((h, w), np.float32), np.zeros((h, w, 3), np.float32)
    for layer_alpha, layer_color in layers:
        alpha, color = S.over(layer_alpha.astype(np.float32), np.broadcast_to(layer_color, (h, w, 3)).astype(np.float32),
                              alpha, color)
    return S.Stamp(alpha=(alpha * opacity).astype(np.float32), color=color, kind="word")


def main(folder: str, weights: list[str], threads: int = 1, pictures: int = 12, styles: tuple[str, ...] = STYLES) -> None:
    import torch

    from desample.core import as_engine, network_pass
    from desample.data.index import ensure_index
    from desample.data.pairs import flatten_alpha, make_preview
    from desample.data.validation import preview_size_hr
    from desample.engine.runtime import load_engine
    from desample.train.config import TrainConfig
    from desample.train.loop import validation_pictures

    torch.set_num_threads(threads)
    cfg = TrainConfig(data=[folder])
    index = ensure_index(cfg.data, val_fraction=cfg.val_fraction, cache_dir=cfg.index_cache)
    hrs = [preview_size_hr(flatten_alpha(p), 2) for p in validation_pictures(index, cfg)[:pictures]]
    for path in weights or [None]:
        engine = as_engine(load_engine(path, threads=threads))
        print(f"{path or 'shipped model'}:")
        for style in styles:
            for opacity in OPACITIES:
                recall, matte_ratio, psnr = [], [], []
                for i, hr in enumerate(hrs):
                    rng = np.random.default_rng(500 + i)  # the same words and colours for every style
                    h, w = hr.size[1] // 2, hr.size[0] // 2
                    pv = make_preview(hr, rng, 2, stamp=styled_word(h, w, rng, style, opacity))
                    found, clean = np.zeros((h, w), np.float32), np.empty_like(pv.stamped)
                    matte = np.zeros((h, w), np.float32) if getattr(engine, "has_matte", False) else None
                    network_pass(engine, pv.stamped, None, 512, None, clean, found, matte_out=matte)
                    seen = pv.alpha > 0.1
                    recall.append((found[seen] > 0.5).mean())
                    if matte is not None:
                        matte_ratio.append(matte[seen].mean() / pv.alpha[seen].mean())
                    see = pv.mask & (pv.alpha < 0.7)
                    if see.any():
                        psnr.append(10 * np.log10(1 / max(((clean[see] - pv.clean_lr[see]) ** 2).mean(), 1e-10)))
                ratio = f"{np.mean(matte_ratio):.3f}" if matte_ratio else "-"
                print(f"  {style:8s} opacity {opacity:.2f}: recall {np.mean(recall):.3f}, matte {ratio} of the true one, "
                      f"removal PSNR where see-through {np.mean(psnr):.2f} dB")


if __name__ == "__main__":
    chosen = tuple(a for a in sys.argv[2:] if a in STYLES) or STYLES
    main(sys.argv[1], [a for a in sys.argv[2:] if a not in STYLES], styles=chosen)
