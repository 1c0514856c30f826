"""How much of a picture with no stamp the detector marks as stamp: the held-out pictures of a
folder (training's own validation split), each shrunk to a preview and JPEG'd, no stamp drawn.
Prints the mean share marked (stamp probability > 0.5) and how many pictures have over 1% marked,
and what the marks cost: the squared error of the 2x output against the truth within 4 px of a mark
and elsewhere, blind and with detection off (`--no-detect`), summed over the pictures.

    python research/measure_false_detections.py ../shared/data/anime [weights.safetensors ...]

Session 11, the step-29,250 weights: 3.1% marked, 14 of 24 pictures over 1% (the mean of steps
27,000 and 28,500 before them: 3.05%, 16 of 24): bright, glowing art is taken for a stamp.
Session 25, the step-35,000 weights: 1.37%, 7 of 24; squared error within 4 px of a mark 3930
blind vs 1909 with detection off, elsewhere 51609 vs 51857: the marks are what detection costs.
The step-36,000 weights: 1.07%, 8 of 24, at most 7.3%; 4289 vs 2078 near marks, 51325 vs 51546 elsewhere.
"""

import sys

import numpy as np
from scipy import ndimage

NEAR = 4  # LR px around a mark counted as its surroundings (the repaint blends into them)


def main(folder: str, weights: list[str], threads: int = 1) -> None:
    import torch

    from desample.core import restore
    from desample.data.index import ensure_index
    from desample.data.pairs import random_jpeg
    from desample.data.validation import build_validation_set
    from desample.engine.runtime import load_engine
    from desample.train.config import TrainConfig
    from desample.train.loop import validation_pictures

    torch.set_num_threads(threads)
    cfg = TrainConfig(data=[folder])
    index = ensure_index(cfg.data, val_fraction=cfg.val_fraction, cache_dir=cfg.index_cache)
    previews = build_validation_set(validation_pictures(index, cfg), kinds_per_picture=1)
    for path in weights or [None]:
        engine = load_engine(path, threads=threads)
        marked, errors = [], np.zeros((2, 2))  # (blind, no-detect) x (near a mark, elsewhere)
        for i, pv in enumerate(previews):
            lr = random_jpeg(pv.clean_lr, np.random.default_rng(i))
            blind = restore(lr, engine)
            marks = blind.mask > 0.5
            marked.append(marks.mean())
            near = np.kron(ndimage.binary_dilation(marks, iterations=NEAR), np.ones((2, 2), bool))
            for row, out in enumerate((blind.rgb, restore(lr, engine, detect=False).rgb)):
                squared = ((out - pv.hr) ** 2).sum(-1)
                errors[row] += squared[near].sum(), squared[~near].sum()
        marked = np.array(marked)
        print(f"{path or 'shipped model'}: {100 * marked.mean():.2f}% marked on average, "
              f"{(marked > 0.01).sum()} of {len(marked)} pictures over 1%, at most {100 * marked.max():.1f}%; "
              f"squared error within {NEAR} px of a mark: blind {errors[0, 0]:.0f}, --no-detect {errors[1, 0]:.0f}; "
              f"elsewhere: blind {errors[0, 1]:.0f}, --no-detect {errors[1, 1]:.0f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
