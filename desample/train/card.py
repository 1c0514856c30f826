"""Print the validation table of a weights file's metadata, for MODEL_CARD.md.

    python -m desample.train.card desample/weights/default.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def validation_table(meta: dict) -> str:
    v = meta["val"]
    rows = [
        ("PSNR RGB (dB)", "psnr"),
        ("PSNR Y, 4 px shaved (dB)", "psnr_y"),
        ("SSIM (Y)", "ssim"),
        ("PSNR inside the stamp (dB)", "psnr_in"),
        ("PSNR outside the stamp (dB)", "psnr_out"),
    ]
    lines = ["| metric | desample | bicubic of the stamped input | gain |", "|---|---|---|---|"]
    for label, k in rows:
        digits = 4 if k == "ssim" else 2
        lines.append(f"| {label} | {v[k]:.{digits}f} | {v['bicubic_' + k]:.{digits}f} | {v[k] - v['bicubic_' + k]:+.{digits}f} |")
    lines.append(f"| mask IoU (threshold 0.5) | {v['mask_iou']:.3f} | - | - |")
    hours = meta.get("train_seconds", 0) / 3600
    lines += ["", f"Step {meta['step']} of this run, {meta['samples']:,} training crops in all, {hours:.2f} h of training time; "
              f"{meta.get('val_previews', '?')} validation previews from {meta.get('val_pictures', '?')} held-out pictures."]
    return "\n".join(lines)


if __name__ == "__main__":
    print(validation_table(json.loads(Path(sys.argv[1] if len(sys.argv) > 1 else "desample/weights/default.json").read_text())))
