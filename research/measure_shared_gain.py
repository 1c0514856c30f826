"""What `--shared` gains inside the stamp over blind removal, set by set, for some weights: the two
columns of `desample bench --shared K` that decide issue 5, without the other methods (2 minutes for
16 procedural sets of 4 on one thread, against ~10 for the whole bench), to compare training runs.

    python research/measure_shared_gain.py WEIGHTS.safetensors - 4 16                 # 16 procedural sets of 4
    python research/measure_shared_gain.py WEIGHTS.safetensors ../shared/data/anime 4 8  # 8 held-out sets of 4
    python research/measure_shared_gain.py - - 4 16 preview   # see-through glowing words (--shared-stamps preview)

WEIGHTS "-": the shipped model. Runs on PyTorch, one thread; the sets are the bench's (the same seed
and pictures; before session 31, procedural sets of 8 beyond the 8th reused the first 64 pictures).
Session 28, the shipped step-36,000 weights: procedural blind 20.43, `--shared` 23.14 (+2.72, as the
bench), real 19.50 / 21.24 (+1.74). Session 31 (the glow's region): procedural 20.43 / 23.15 (+2.72), glowing
words 22.11 / 24.24 (+2.12), real 19.50 / 21.26 (+1.76).
Session 32 (the network looking after the inverse blend, the edges' floor at 0.005): procedural
23.44 (+3.02), glowing words 24.48 (+2.37), of 8 24.90 (+3.07), real 21.31 (+1.81), of 8 21.98 (+2.61).
"""

import sys
import time

import numpy as np


def main(weights: str | None, folder: str | None, k: int, n_sets: int, stamps: str = "words") -> None:
    import torch

    from desample.bench.shared import build_sets, shared_pictures
    from desample.core import restore
    from desample.engine.runtime import load_engine
    from desample.metrics import picture_metrics
    from desample.shared import estimate_shared, pictures_using

    torch.set_num_threads(1)
    engine = load_engine(weights, "torch", 1)
    rows = []
    start = time.time()
    for i, previews in enumerate(build_sets(shared_pictures(folder, max(64, k * n_sets)), k, n_sets, stamps=stamps)):
        est = estimate_shared([p.stamped for p in previews], engine)
        blind_in, shared_in, errors = [], [], []
        for p, offset, used in zip(previews, est.offsets, pictures_using(est), strict=True):
            matte, color = est.placed(p.stamped.shape[:2], offset)
            errors.append(np.abs(matte - p.alpha)[p.mask].mean())
            blind = restore(p.stamped, engine).rgb
            shared = restore(p.stamped, engine, stamp=(matte, color)).rgb if used else blind
            blind_in.append(picture_metrics(blind, p.hr, p.mask, 2)["psnr_in"])
            shared_in.append(picture_metrics(shared, p.hr, p.mask, 2)["psnr_in"])
        rows.append((np.mean(blind_in), np.mean(shared_in), np.mean(errors)))
        b, s, e = rows[-1]
        misfit = "-" if est.misfit is None else f"{est.misfit:.2f}"
        print(f"set {i} {previews[0].kind}: misfit {misfit}, blind {b:.2f}, --shared {s:.2f} ({s - b:+.2f}), "
              f"matte error {e:.3f}", flush=True)
    b, s, e = np.mean(rows, axis=0)
    print(f"mean inside the stamp: blind {b:.3f}, --shared {s:.3f} ({s - b:+.3f}); matte error {e:.4f} ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    main(None if sys.argv[1] == "-" else sys.argv[1], None if sys.argv[2] == "-" else sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
         *sys.argv[5:])
