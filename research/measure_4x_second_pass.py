"""What desample's second 2x pass adds at 4x: `--scale 4` (the 2x model twice, the second time told
there is no stamp) against its 2x followed by a Lanczos 2x, and against a second pass with
`--denoise 0`, on the held-out pictures of a folder as 4x previews (the picture is the truth), or
on 8 procedural pictures (folder "-": 233x330 previews), stamped and clean (JPEG'd as previews
are). Prints mean PSNR (RGB / Y) and seconds per picture.

    python research/measure_4x_second_pass.py ../shared/data/anime [weights]
    python research/measure_4x_second_pass.py -

Session 26, the step-36,000 weights, 24 held-out pictures (previews of 52x111 to 330x249): PSNR
stamped 23.595 (4x) / 23.595 (2x + Lanczos) / 23.610 (second pass --denoise 0), clean 24.708 /
24.733 / 24.752: on real pictures the second pass is a Lanczos 2x. Procedural pictures (flat
colours, crisp lines), PSNR-Y: stamped 29.91 / 29.66, clean 31.99 / 31.68: there it gains 0.3 dB.
"""

import sys
import time

import numpy as np
from PIL import Image


def main(folder: str, weights: str | None = None, threads: int = 1) -> None:
    import torch

    from desample.core import restore
    from desample.data.pairs import random_jpeg
    from desample.data.sources import list_pictures, split_holdout
    from desample.data.stream import load_pictures
    from desample.data.validation import build_validation_set
    from desample.engine.runtime import load_engine
    from desample.metrics import psnr, psnr_y

    torch.set_num_threads(threads)
    if folder == "-":
        from desample.data.procedural import anime_picture

        pictures = [anime_picture(932, 1320, seed=90_000 + i) for i in range(8)]
    else:
        pictures = load_pictures(split_holdout(list_pictures(folder))[1])
    previews = build_validation_set(pictures, scale=4, kinds_per_picture=1, lr_long=10_000)
    engine = load_engine(weights, threads=threads)

    def lanczos(rgb):
        im = Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8))
        return np.asarray(im.resize((2 * im.width, 2 * im.height), Image.LANCZOS), np.float32) / 255

    methods = {
        "--scale 4": lambda lr: restore(lr, engine, scale=4).rgb,
        "2x + Lanczos 2x": lambda lr: lanczos(restore(lr, engine).rgb),
        "second pass --denoise 0": lambda lr: restore(restore(lr, engine).rgb, engine, detect=False, denoise=0).rgb,
    }
    for kind in ("stamped", "clean"):
        scores = {name: [] for name in methods}
        for i, pv in enumerate(previews):
            lr = pv.stamped if kind == "stamped" else random_jpeg(pv.clean_lr, np.random.default_rng(i))
            for name, fn in methods.items():
                t0 = time.perf_counter()
                out = np.clip(fn(lr), 0, 1)
                scores[name].append((psnr(out, pv.hr), psnr_y(out, pv.hr), time.perf_counter() - t0))
        for name, rows in scores.items():
            rows = np.array(rows)
            print(f"{kind:8s} {name:24s} PSNR {rows[:, 0].mean():.3f}  PSNR-Y {rows[:, 1].mean():.3f}  "
                  f"{np.median(rows[:, 2]):.3f} s/picture")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
