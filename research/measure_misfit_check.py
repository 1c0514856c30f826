"""Is `--shared`'s misfit check (shared.POLICY.misfit_limit) right to fall back to blind removal? For sets of
K previews sharing a stamp (as `desample bench --shared K` draws them, with other seeds for more
draws), each set's misfit and what using its estimate gains inside the stamp over blind removal;
then the mean gain of: the check, always using the estimate, never using it.

    python research/measure_misfit_check.py ../shared/data/anime 4 [seeds ...]   # 8 sets per seed
    python research/measure_misfit_check.py - 4 [seeds ...]                      # procedural, 4 sets per seed

Session 20, shipped weights, K = 4: anime seeds 4321 999 777 and procedural 4321 999 (32 sets):
the check +1.21 dB, always +1.02 (the check before, |J - (a*W + (1-a)*C)| / |J - C| over 1: +0.64).
Session 21, the estimates of sets under 8 refined (stamps.estimate.refine_stamp), the same sets:
anime +1.29 / always +1.27 (24 sets), procedural +2.04 / +1.98 (8): together +1.48 / +1.45.
About 1 minute per 8 sets here.
"""

import sys

import numpy as np


def main(folder: str | None, k: int, seeds: list[int]) -> None:
    from desample.bench.shared import drawn_sets
    from desample.core import restore
    from desample.engine.runtime import load_engine
    from desample.metrics import enlarge_mask, psnr
    from desample.shared import POLICY, estimate_shared

    engine = load_engine(threads=1)
    rows = []
    for seed, i, previews in drawn_sets(folder, k, seeds):
        est = estimate_shared([p.stamped for p in previews], engine)
        gains = []
        for p, offset in zip(previews, est.offsets, strict=True):
            inside = enlarge_mask(p.mask, 2)
            used = restore(p.stamped, engine, stamp=est.placed(p.stamped.shape[:2], offset)).rgb
            blind = restore(p.stamped, engine).rgb
            gains.append(psnr(used, p.hr, inside) - psnr(blind, p.hr, inside))
        rows.append((est.misfit, float(np.mean(gains))))
        print(f"seed {seed} set {i} ({previews[0].kind}): misfit {est.misfit:.2f}, using the estimate {rows[-1][1]:+.2f} dB "
              "inside the stamp", flush=True)
    n = len(rows)
    print(f"{n} sets of {k}, mean gain inside the stamp over blind removal: check (limit {POLICY.misfit_limit}) "
          f"{sum(g for m, g in rows if m <= POLICY.misfit_limit) / n:+.2f} dB, always {sum(g for _, g in rows) / n:+.2f}, never +0.00")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(None if sys.argv[1] == "-" else sys.argv[1], int(sys.argv[2]), [int(s) for s in sys.argv[3:]] or [4321])
