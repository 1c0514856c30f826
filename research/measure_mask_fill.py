"""How much a given mask helps `restore()`: procedural previews, five stamp kinds, two sizes, each
cleaned blind, with a loose box mask around the stamp, and with the exact mask. Prints the mean
absolute error inside the stamp and over the whole picture (lower is better). Uses the shipped model.

    python research/measure_mask_fill.py
"""

import numpy as np

from desample.core import restore
from desample.data.procedural import anime_picture
from desample.engine.runtime import load_engine
from desample.stamps.synthesis import apply_stamp, make_stamp


def main(seeds=range(9, 15), threads: int = 1) -> None:
    engine = load_engine(threads=threads)
    rows = []
    for h, w in ((120, 160), (330, 233)):
        for kind in ("logo", "word", "signature", "word_jp", "tiled"):
            for seed in seeds:
                stamp = make_stamp(h, w, np.random.default_rng(seed), kind, extra=False)
                truth = np.asarray(anime_picture(w, h, seed=seed), np.float32) / 255
                stamped = apply_stamp(truth, stamp)
                inside = stamp.alpha > 0.05
                ys, xs = np.nonzero(inside)
                box = np.zeros((h, w), np.float32)
                box[max(ys.min() - 4, 0) : ys.max() + 4, max(xs.min() - 4, 0) : xs.max() + 4] = 1
                errors = [np.abs(restore(stamped, engine, scale=1, mask=m).rgb - truth).mean(-1)
                          for m in (None, box, inside.astype(np.float32))]
                rows.append([e[inside].mean() for e in errors] + [e.mean() for e in errors])
    mean = np.mean(rows, axis=0)
    print(f"{len(rows)} previews; mean absolute error, in the stamp / whole picture")
    for i, name in enumerate(("blind", "loose box mask", "exact mask")):
        print(f"{name:>15}: {mean[i]:.4f} / {mean[i + 3]:.4f}")


if __name__ == "__main__":
    main()
