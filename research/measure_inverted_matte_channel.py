"""Does a model with a third guide channel (the matte `--shared` inverted) clean what the estimate's
errors leave? The sets of `desample bench --shared K` (a folder's validation split, 8 sets), the
stamp estimated once per set with the shipped model and kept fixed, then removed with `weights`:
with the channel as trained, with it zeroed (the same weights, told nothing), and with the true stamp
both ways (an exact stamp, as a hand-made stamp file gives, must not be "corrected").

    python research/measure_inverted_matte_channel.py ../shared/data/anime 4 weights.onnx

Session 20 (runs 27-29, TrainConfig.unblended; ~1 min per call here): PSNR in the stamp, mean of the
8 sets; the shipped step-31,750 weights (2 channels) in brackets.

| weights | K | estimated stamp | channel zeroed | true stamp | true, zeroed |
|---|---|---|---|---|---|
| run 28, step 33,500 | 8 | 21.68 (21.66) | 21.73 | - | - |
| run 28, step 33,500 | 4 | 20.78 (20.49) | 20.58 | 24.75 (25.35) | 25.31 |
| run 29, step 34,750 | 4 | 20.78 | 20.59 | 24.49 (25.35) | 25.33 |

It helps where the estimate is poor (4 pictures, faint stamps: +0.2) and costs where it is good
(8 pictures: -0.05) or exact (-0.8): from the picture alone the model cannot tell how wrong the
matte it is told about is, and corrects every one alike. Not shipped.
"""

import pickle
import sys
from pathlib import Path

import numpy as np


class _ThirdChannelZeroed:
    """The engine with its third guide channel always zero (the model told nothing was inverted)."""

    def __init__(self, engine):
        self.engine = engine
        self.scale, self.multiple, self.border = engine.scale, engine.multiple, engine.border
        self.guide_channels = engine.guide_channels

    def __call__(self, x, guide):
        guide = guide.copy()
        guide[:, 2:] = 0
        return self.engine(x, guide)


def main(folder: str, k: int, weights: str) -> None:
    from desample.bench.shared import build_sets, shared_pictures
    from desample.core import restore
    from desample.engine.runtime import load_engine
    from desample.metrics import enlarge_mask, psnr
    from desample.shared import estimate_shared

    sets = build_sets(shared_pictures(folder, 64), k, 8)
    cache = Path(f"/tmp/desample_shipped_estimates_k{k}.pkl")  # the shipped model's: one for every weights
    if cache.exists():
        estimates = pickle.loads(cache.read_bytes())
    else:
        shipped = load_engine(threads=1)
        estimates = [estimate_shared([p.stamped for p in s], shipped) for s in sets]
        cache.write_bytes(pickle.dumps(estimates))
    engine = load_engine(weights, threads=1)
    engines = {"as trained": engine}
    if engine.guide_channels > 2:
        engines["channel zeroed"] = _ThirdChannelZeroed(engine)
    rows: dict[str, list[float]] = {}
    for previews, est in zip(sets, estimates, strict=True):
        for p, offset in zip(previews, est.offsets, strict=True):
            inside = enlarge_mask(p.mask, 2)
            stamps = {"estimated stamp, ": est.placed(p.stamped.shape[:2], offset),
                      "true stamp, ": (p.alpha, np.ascontiguousarray(p.color))}
            for prefix, stamp in stamps.items():
                for name, e in engines.items():
                    out = restore(p.stamped, e, stamp=stamp).rgb
                    rows.setdefault(prefix + name, []).append(psnr(out, p.hr, inside))
    for name, values in rows.items():
        per_set = np.array(values).reshape(len(sets), k).mean(axis=1)
        print(f"{name:35s} {np.mean(values):.2f} dB in the stamp | sets: " + " ".join(f"{v:.2f}" for v in per_set))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
