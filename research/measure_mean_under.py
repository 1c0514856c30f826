"""Where `--shared`'s estimate loses in see-through stamps: the matte, or the pictures' mean under it.

Given a matte a, each picture under the stamp is I_k = (J_k - mean_k J) / (1 - a) + mean_k I: the
pictures' differences from their mean are exact, and all that is left to know is mean_k I, the mean
of the pictures under the stamp (the colour follows from it: a*W = mean J - (1 - a)*mean I). This
script takes `--shared`'s final estimate of each set (`shared.estimate_shared`) and inverts the
pictures at 1x, in the see-through part of the stamp (0 < a < 0.7, inside the true stamp), with
mean_k I from:

    implied        the estimate's own colour (what `--shared` inverts with)
    median steps   stamps.estimate._mean_under with the final matte (how the colour was first made)
    net blind      the mean of the network's blind removals of the stamped pictures
    net inverted   the mean of the network's passes on the pictures inverted with the estimate
                   (shared._cleaned_under, what the refit fits to)
    true           the pictures' true mean under the stamp (a bound: the matte's own error left)

    python research/measure_mean_under.py - 4 16                    # the bench's 16 procedural sets of 4
    python research/measure_mean_under.py ../shared/data/anime 4 8  # its 8 held-out anime sets of 4

Session 30, shipped step-36,000 weights, 16 procedural sets of 4 (PSNR of the inverted pictures in
the see-through part): implied 24.22, median steps 23.64, net blind 22.00, net inverted 24.27, true
26.78 dB: the estimate's mean under the stamp costs 2.56 dB there, its matte (true mean vs the true
stamp) the rest.
"""

import sys

import numpy as np


def main(folder: str | None, k: int, n_sets: int) -> None:
    import torch

    from desample.bench.shared import build_sets, shared_pictures
    from desample.core import network_pass
    from desample.engine.runtime import load_engine
    from desample.shared import _cleaned_under, estimate_shared
    from desample.stamps.estimate import _mean_under

    torch.set_num_threads(1)
    engine = load_engine(None, "torch", 1)
    rows = []
    for i, previews in enumerate(build_sets(shared_pictures(folder, 64), k, n_sets)):
        stamped = [p.stamped for p in previews]
        est = estimate_shared(stamped, engine)
        if any(o != est.offsets[0] for o in est.offsets):
            print(f"set {i}: the stamp moves between pictures, left out")
            continue
        matte, color = est.placed(stamped[0].shape[:2], est.offsets[0])
        see = previews[0].mask & (matte > 0) & (matte < 0.7)
        if see.sum() < 50:
            print(f"set {i}: no see-through part, left out")
            continue
        pictures, truth = np.stack(stamped), np.stack([p.clean_lr for p in previews])
        a = matte[..., None]
        mean, centred = pictures.mean(0), pictures - pictures.mean(0)
        blind = []
        for p in stamped:
            blind.append(np.empty_like(p))
            network_pass(engine, p, None, 512, None, blind[-1], None)
        inverted = [_cleaned_under(est, p, o, engine, 512) for p, o in zip(stamped, est.offsets, strict=True)]
        means = {
            "implied": (mean - a * color) / (1 - a),
            "median steps": _mean_under(centred, mean, matte, matte == 0),
            "net blind": np.mean(blind, 0),
            "net inverted": np.mean(inverted, 0),
            "true": truth.mean(0),
        }
        scores = {}
        for name, under in means.items():
            error = (np.clip(centred / (1 - a) + under, 0, 1) - truth)[:, see]
            scores[name] = 10 * np.log10(1 / np.mean(error**2))
        rows.append(list(scores.values()))
        print(f"set {i}: " + ", ".join(f"{n} {v:.2f}" for n, v in scores.items()), flush=True)
    print("mean: " + ", ".join(f"{n} {v:.2f}" for n, v in zip(scores, np.mean(rows, 0), strict=True)))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(None if sys.argv[1] == "-" else sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
