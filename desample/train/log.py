"""Read a training run's log.jsonl: the validation history as a table and a curve picture.

    desample log ~/.cache/desample/run
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..stamps.fonts import available_fonts, load_font


def read_log(run: str | Path) -> tuple[list[dict], list[dict]]:
    """(loss records, validation records) of a run folder (or its log.jsonl)."""
    path = Path(run).expanduser()
    if path.is_dir():
        path = path / "log.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"no training log at {path}")
    train, val = [], []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a killed run
        (val if "val" in rec else train).append(rec)
    return train, val


def validation_table(val: list[dict]) -> str:
    lines = ["| step | samples | train h | PSNR | gain over bicubic | in stamp (gain) | outside (gain) | mask IoU |",
             "|---|---|---|---|---|---|---|---|"]
    for r in val:
        v = r["val"]
        gain = {k: v[k] - v[f"bicubic_{k}"] for k in ("psnr", "psnr_in", "psnr_out")}
        lines.append(
            f"| {r['step']} | {r['samples']:,} | {r['train_seconds'] / 3600:.2f} | {v['psnr']:.2f} | {gain['psnr']:+.2f} | "
            f"{v['psnr_in']:.2f} ({gain['psnr_in']:+.2f}) | {v['psnr_out']:.2f} ({gain['psnr_out']:+.2f}) | {v['mask_iou']:.3f} |"
        )
    return "\n".join(lines)


def curves(train: list[dict], val: list[dict], path: Path, size=(720, 400)) -> None:
    """Training loss (grey) and validation gain over bicubic (whole picture blue, inside the stamp red) by step."""
    W, H = size
    m = 50
    img = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(img)
    latin, _ = available_fonts()
    f = load_font(latin[0] if latin else None, 12)
    series = [
        ([r["step"] for r in train], [r["loss"] for r in train], (150, 150, 150), "train loss"),
        ([r["step"] for r in val], [r["val"]["psnr"] - r["val"]["bicubic_psnr"] for r in val], (40, 80, 200), "PSNR gain (dB)"),
        ([r["step"] for r in val], [r["val"]["psnr_in"] - r["val"]["bicubic_psnr_in"] for r in val], (200, 40, 40), "in-stamp gain (dB)"),
    ]
    steps = [s for xs, *_ in series for s in xs] or [0, 1]
    x0, x1 = min(steps), max(max(steps), min(steps) + 1)
    d.rectangle([m, m, W - m, H - m], outline=(0, 0, 0))
    for k, (xs, ys, color, name) in enumerate(series):
        if len(xs) < 1:
            continue
        y0, y1 = float(np.min(ys)), float(np.max(ys))
        y1 = y1 if y1 > y0 else y0 + 1e-6
        pts = [(m + (x - x0) / (x1 - x0) * (W - 2 * m), H - m - (y - y0) / (y1 - y0) * (H - 2 * m)) for x, y in zip(xs, ys, strict=True)]
        if len(pts) > 1:
            d.line(pts, fill=color, width=2)
        for p in pts if len(pts) < 60 else []:
            d.ellipse([p[0] - 2, p[1] - 2, p[0] + 2, p[1] + 2], fill=color)
        d.text((m, 4 + 14 * k), f"{name}: last {ys[-1]:.3f}, range {y0:.2f} .. {y1:.2f} (own scale)", fill=color, font=f)
    d.text((m, H - m + 8), f"step {x0}", fill=(0, 0, 0), font=f)
    d.text((W - m - 80, H - m + 8), f"step {x1}", fill=(0, 0, 0), font=f)
    img.save(path)
