"""Draw the README's example: a procedural anime-like picture with a glowing SAMPLE stamp, saved as a JPEG preview.

    python examples/make_example.py   # writes examples/stamped.jpg and examples/truth.png
"""

from pathlib import Path

import numpy as np
from PIL import Image

from desample.data.pairs import make_preview
from desample.data.procedural import anime_picture
from desample.stamps.synthesis import classic_sample_stamp

HERE = Path(__file__).resolve().parent


def main() -> None:
    truth = anime_picture(466, 660, seed=7)  # the HR truth, our own drawing
    rng = np.random.default_rng(3)
    preview = make_preview(truth, rng, scale=2, stamp=classic_sample_stamp(330, 233))
    Image.fromarray((preview.stamped * 255 + 0.5).astype(np.uint8)).save(HERE / "stamped.jpg", quality=85, subsampling=2)
    truth.save(HERE / "truth.png")


if __name__ == "__main__":
    main()
