"""The reference mask of optcg_set1's shared SAMPLE stamp, for `desample bench --real` (not packaged).

    python research/real_reference_mask.py ../shared/data/real_stamps/optcg_set1 docs/bench/real/optcg_set1

How: 26 of the 31 cards carry one stamp at one place (white, ~60% opaque); the other 5 (listed in
reference.json's "without") carry their own, smaller or shifted, SAMPLE. Under the shared word every
card is at least ~0.6 x 255 bright, so the 15th percentile of the 26 cards' luminance is bimodal in
the word's box (counts: a mode at 40-90, one at 180-210, almost nothing at 120-170); thresholded at
140 and kept to its 6 big components (S, A, M, P, L, E; counters of A and P stay open), it is the
word's letters. A mask is not a copy of the pictures: it is committed, the cards are not.
"""

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

OTHER_STAMPS = ["EB01-061_EN", "OP01-070_EN", "OP03-048_EN", "OP04-056_EN", "OP05-067_EN"]
WORD_BOX = (slice(300, 490), slice(30, 575))  # rows, columns of the 600x838 cards around the word
THRESHOLD, MIN_LETTER = 140, 1000


def reference_mask(folder: Path) -> np.ndarray:
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in (".webp", ".png", ".jpg") and f.stem not in OTHER_STAMPS)
    grey = np.stack([np.asarray(Image.open(f).convert("L"), np.float32) for f in files])
    low = np.percentile(grey, 15, axis=0)
    mask = np.zeros(low.shape, bool)
    mask[WORD_BOX] = low[WORD_BOX] > THRESHOLD
    labels, n = ndi.label(mask)
    sizes = ndi.sum(mask, labels, range(1, n + 1))
    return np.isin(labels, 1 + np.nonzero(sizes >= MIN_LETTER)[0])


if __name__ == "__main__":
    folder, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    mask = reference_mask(folder)
    Image.fromarray((mask * 255).astype(np.uint8)).save(out / "reference_mask.png")
    (out / "reference.json").write_text(json.dumps({
        "mask": "reference_mask.png",
        "size": [mask.shape[1], mask.shape[0]],
        "without": OTHER_STAMPS,
        "note": "optcg_set1's shared SAMPLE (26 of 31 cards); the 5 'without' carry another stamp of their own: "
                "scored for collateral only. Made by research/real_reference_mask.py.",
    }, indent=2) + "\n")
    print(f"{out / 'reference_mask.png'}: {mask.sum()} px ({100 * mask.mean():.1f}% of the card)")
