"""Clean every picture of a folder from Python, as `desample clean IN -o OUT` does.

    python examples/clean_folder.py in_dir out_dir [--scale 2]
"""

import argparse
from pathlib import Path

from desample.api import CleanOptions, clean, load_engine
from desample.data.sources import IMAGE_EXTENSIONS
from desample.imageio import ImageLoadError, save_image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", type=Path)
    ap.add_argument("output", type=Path)
    ap.add_argument("--scale", type=int, default=2)
    args = ap.parse_args()
    engine = load_engine()  # the shipped model on ONNX Runtime, loaded once for the whole folder
    options = CleanOptions(scale=args.scale)
    for src in sorted(p for p in args.inputs.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS):
        dst = args.output / src.relative_to(args.inputs).with_suffix(".png")
        try:
            result = clean(src, engine, options)
        except (ImageLoadError, ValueError) as e:  # one bad file does not stop the folder
            print(f"skipped {src}: {e}")
            continue
        save_image(dst, result.rgb, result.alpha)  # atomic: a stopped run leaves no half-written file
        print(f"{src} -> {dst} (stamp found on {100 * result.stamp_coverage:.1f}% of it)")


if __name__ == "__main__":
    main()
