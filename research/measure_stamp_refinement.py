"""What refining a shared stamp's estimate jointly with its pictures (stamps.estimate.refine_stamp)
does, set by set: the matte's error inside the stamp and the PSNR inside the stamp after removal
with the estimate (always used, no misfit check), without and with the refinement. Sets of K
previews sharing a stamp, drawn as `desample bench --shared K` draws them (other seeds: more sets).

    python research/measure_stamp_refinement.py ../shared/data/anime 4 [seeds ...]   # 8 sets per seed
    python research/measure_stamp_refinement.py - 4 [seeds ...]                      # procedural, 4 sets per seed

Session 21, shipped weights, K = 4 (matte error / dB inside the stamp, without -> with):
anime seed 4321 0.106 -> 0.098 / 20.49 -> 20.95, 999 0.127 -> 0.132 / 20.27 -> 20.66,
777 0.112 -> 0.102 / 22.56 -> 23.29; procedural 4321 0.067 -> 0.085 / 22.06 -> 21.86,
999 0.055 -> 0.065 / 24.42 -> 24.84: +0.42 dB over the 32 sets (25 gain, 5 lose 0.01-1.2). K = 8, anime 4321:
0.070 -> 0.085 / 21.66 -> 21.38 in the same steps, so from 8 pictures (shared.POLICY.sure_from) the steps are a third
as long (shared.POLICY.refine_step_sure): anime seeds 4321, 999, 777 +0.08, +0.03, +0.37 dB.
About 2 minutes per 8 sets here.
"""

import sys

import numpy as np


def main(folder: str | None, k: int, seeds: list[int]) -> None:
    from desample.bench.shared import drawn_sets
    from desample.core import restore
    from desample.engine.runtime import load_engine
    from desample.metrics import enlarge_mask, psnr
    from desample.shared import estimate_shared

    engine = load_engine(threads=1)
    rows = []
    for seed, i, previews in drawn_sets(folder, k, seeds):
        stamped = [p.stamped for p in previews]
        row = []
        for refine in (False, True):
            est = estimate_shared(stamped, engine, refine=refine)
            errors, inside_db = [], []
            for p, offset in zip(previews, est.offsets, strict=True):
                matte, color = est.placed(p.stamped.shape[:2], offset)
                errors.append(np.abs(matte - p.alpha)[p.mask].mean())
                used = restore(p.stamped, engine, stamp=(matte, color)).rgb
                inside_db.append(psnr(used, p.hr, enlarge_mask(p.mask, 2)))
            row += [float(np.mean(errors)), float(np.mean(inside_db))]
        rows.append(row)
        print(f"seed {seed} set {i} ({previews[0].kind}): matte error in the stamp {row[0]:.3f} -> {row[2]:.3f}, "
              f"PSNR in the stamp {row[1]:.2f} -> {row[3]:.2f} dB ({row[3] - row[1]:+.2f})", flush=True)
    mean = np.mean(rows, axis=0)
    gained = sum(r[3] > r[1] for r in rows)
    print(f"{len(rows)} sets of {k}: matte error {mean[0]:.3f} -> {mean[2]:.3f}, PSNR in the stamp {mean[1]:.2f} -> "
          f"{mean[3]:.2f} dB ({mean[3] - mean[1]:+.2f}; {gained} sets gain)")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(None if sys.argv[1] == "-" else sys.argv[1], int(sys.argv[2]), [int(s) for s in sys.argv[3:]] or [4321])
