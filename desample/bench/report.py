"""The benchmark's report: a Markdown table, side-by-side crops, a quality-vs-speed plot (drawn with Pillow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..data.pairs import Preview
from ..imageio import to_uint8
from ..stamps.fonts import available_fonts, load_font
from .run import scale_of


def markdown_table(results: dict, command: str) -> str:
    s = results["summary"]
    ref = s.get("desample", {}).get("out_mpix_per_s")
    lines = [
        f"{results['n_cases']} stamped previews, {results.get('scale', 2)}x, {results['threads']} thread(s). Made by `{command}`.",
        "",
        "| method | input | PSNR | PSNR-Y | SSIM | PSNR in stamp | PSNR outside | ΔE00 | s/picture (median) | output MP/s"
        " | speed vs desample | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in s.items():
        ratio = f"{r['out_mpix_per_s'] / ref:.2f}x" if ref else "-"
        rss = f"{r['peak_rss_mb']:.0f}" if "peak_rss_mb" in r and np.isfinite(r["peak_rss_mb"]) else "-"
        lines.append(
            f"| {name} | {r['input']} | {r['psnr']:.2f} | {r['psnr_y']:.2f} | {r['ssim']:.4f} | {r['psnr_in']:.2f} | "
            f"{r['psnr_out']:.2f} | {r.get('delta_e', float('nan')):.3f} | "
            f"{r['seconds_median']:.3f} | {r['out_mpix_per_s']:.3f} | {ratio} | {rss} |"
        )
    if "detector" in results:
        d = results["detector"]
        lines += ["", f"desample's stamp detector: mask IoU {d['mask_iou']:.3f}, F1 {d['mask_f1']:.3f} (blind, threshold 0.5)."]
        if d.get("iou_by_kind"):
            lines[-1] += " IoU per kind: " + ", ".join(f"{k} {v:.3f}" for k, v in d["iou_by_kind"].items()) + "."
    kinds = next(iter(results["by_kind"].values())).keys()
    lines += ["", "PSNR (whole picture / inside the stamp) per stamp kind:", "",
              "| method | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for name, per in results["by_kind"].items():
        lines.append(f"| {name} | " + " | ".join(f"{v['psnr']:.2f} / {v['psnr_in']:.2f}" for v in per.values()) + " |")
    notes = ["- ΔE00: mean CIEDE2000 colour difference from the truth, per pixel (lower is better)"]
    notes += [f"- {n}: {r['note']}" for n, r in s.items() if r.get("note")]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def _font(size):
    latin, _ = available_fonts()
    return load_font(latin[0] if latin else None, size)


def crops_figure(cases: list[Preview], outputs: dict[str, list[np.ndarray]], path: Path, n: int = 3, crop: int = 160) -> None:
    """Rows = pictures, columns = input, each method, truth; crops centred on the stamp."""
    s = scale_of(cases[0])
    names = [f"input (pixels {s}x)", *outputs.keys(), "truth"]
    tiles = []
    for i in range(min(n, len(cases))):
        c = cases[i]
        ys, xs = np.nonzero(c.mask)
        cy, cx = (int(ys.mean()) * s, int(xs.mean()) * s) if len(ys) else (c.hr.shape[0] // 2, c.hr.shape[1] // 2)
        y0 = int(np.clip(cy - crop // 2, 0, max(0, c.hr.shape[0] - crop)))
        x0 = int(np.clip(cx - crop // 2, 0, max(0, c.hr.shape[1] - crop)))
        pixels = np.repeat(np.repeat(c.stamped, s, axis=0), s, axis=1)  # the input as it is, no interpolation
        row = [pixels, *[o[i] for o in outputs.values()], c.hr]
        tiles.append([to_uint8(r[y0 : y0 + crop, x0 : x0 + crop]) for r in row])
    label_h = 18
    w = len(names) * (crop + 4)
    fig = Image.new("RGB", (w, label_h + len(tiles) * (crop + 4)), (255, 255, 255))
    d = ImageDraw.Draw(fig)
    f = _font(11)
    for j, name in enumerate(names):
        d.text((j * (crop + 4) + 2, 2), name[:26], fill=(0, 0, 0), font=f)
    for i, row in enumerate(tiles):
        for j, t in enumerate(row):
            fig.paste(Image.fromarray(t), (j * (crop + 4), label_h + i * (crop + 4)))
    fig.save(path)


def speed_quality_plot(results: dict, path: Path, size=(720, 480)) -> None:
    """PSNR of the stamped-input methods against output megapixels per second (log x)."""
    pts = [(n, r["out_mpix_per_s"], r["psnr"]) for n, r in results["summary"].items() if r["input"] == "stamped"]
    if not pts:
        return
    W, H = size
    m = 60
    img = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(img)
    f = _font(12)
    xs = np.log10([p[1] for p in pts])
    ys = np.array([p[2] for p in pts])
    x0, x1 = xs.min() - 0.3, xs.max() + 0.3
    y0, y1 = ys.min() - 1, ys.max() + 1
    def px(x, y):
        return m + (x - x0) / (x1 - x0) * (W - 2 * m), H - m - (y - y0) / (y1 - y0) * (H - 2 * m)
    d.rectangle([m, m, W - m, H - m], outline=(0, 0, 0))
    for (name, _, _), x, y in zip(pts, xs, ys, strict=True):
        X, Y = px(x, y)
        d.ellipse([X - 4, Y - 4, X + 4, Y + 4], fill=(200, 40, 40) if name.startswith("desample") else (40, 80, 200))
        d.text((X + 6, Y - 6), name, fill=(0, 0, 0), font=f)
    for t in np.arange(np.ceil(x0), np.floor(x1) + 1):
        X, _ = px(t, y0)
        d.text((X - 10, H - m + 4), f"{10 ** t:g}", fill=(0, 0, 0), font=f)
    d.text((W // 2 - 120, H - 24), "output megapixels per second (log)", fill=(0, 0, 0), font=f)
    for t in np.arange(np.ceil(y0), np.floor(y1) + 1, 2):
        _, Y = px(x0, t)
        d.text((8, Y - 6), f"{t:.0f} dB", fill=(0, 0, 0), font=f)
    d.text((m, 20), f"whole-picture PSNR vs speed, stamped previews, {results.get('scale', 2)}x", fill=(0, 0, 0), font=f)
    img.save(path)
