"""`desample bench --real DIR`: real stamped previews, without clean originals.

    desample bench --real ../shared/data/real_stamps/optcg_set1 --reference docs/bench/real/optcg_set1/reference.json

What a user sees, measured without truth, per picture and over the folder, at each width asked
(--real-widths, default 233 px, the typical preview, and the pictures' own size), for blind
removal and for `--shared` (the stamp estimated from the folder's pictures at that width):
- residual: how visible the stamp still is. A letter's contrast is the mean luminance (0-255) over
  its pixels less the mean over a ring around it; the stamp's is the letters' mean, weighted by
  their size. Residual = contrast after (the output made small again) / contrast before; 0 = gone.
  The folder's residual is the ratio of the sums (pictures' art averages out).
- collateral: the mean absolute change (0-255, all channels) against `--no-detect` (enlarge and
  denoise only) away from the stamp (outside the reference mask grown by 3% of the width): what
  the method did to the picture's own art, text and frame.
- recall and precision of what the method marked (its mask, as `--save-mask` writes it) against
  the reference mask (precision against the reference grown by 1% of the width: the edges).
The reference: a JSON file {"mask": PNG beside it, white = stamp, "without": [stems of pictures
that carry another stamp: scored for collateral only]}, or a PNG alone. It is resized with the
pictures (nearest).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from ..api import CleanOptions, clean
from ..data.sources import IMAGE_EXTENSIONS
from ..imageio import load_image
from ..shared import estimate_shared, pictures_using, why_not_used

LUMA = np.array([0.299, 0.587, 0.114], np.float32)
METHODS = ("blind", "shared")


@dataclass
class Reference:
    mask: np.ndarray  # (H, W) bool at the reference's own size
    without: set[str] = field(default_factory=set)  # stems of pictures carrying another stamp

    @classmethod
    def load(cls, path: str | Path) -> Reference:
        path = Path(path)
        if path.suffix.lower() == ".json":
            meta = json.loads(path.read_text())
            mask_path = path.parent / meta["mask"]
            without = set(meta.get("without", []))
        else:
            mask_path, without = path, set()
        mask = np.asarray(Image.open(mask_path).convert("L")) > 127
        return cls(mask, without)

    def at(self, size: tuple[int, int]) -> np.ndarray:
        """The mask at (w, h), nearest neighbour."""
        if (self.mask.shape[1], self.mask.shape[0]) == size:
            return self.mask
        return np.asarray(Image.fromarray(self.mask.astype(np.uint8) * 255).resize(size, Image.NEAREST)) > 127


def luminance(rgb: np.ndarray) -> np.ndarray:
    """(H, W) in 0-255 from uint8 or float [0,1] RGB."""
    x = rgb.astype(np.float32) * (1.0 if rgb.dtype == np.uint8 else 255.0)
    return x @ LUMA


def stamp_contrast(grey: np.ndarray, mask: np.ndarray) -> float:
    """Mean over the mask's letters (connected parts) of mean(inside) - mean(ring around it), weighted by size."""
    width = mask.shape[1]
    gap, reach = max(1, round(0.005 * width)), max(2, round(0.02 * width))
    labels, n = ndi.label(mask)
    near = ndi.binary_dilation(mask, iterations=gap)
    total = weight = 0.0
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        y0, y1 = max(0, sl[0].start - reach - gap), min(mask.shape[0], sl[0].stop + reach + gap)
        x0, x1 = max(0, sl[1].start - reach - gap), min(width, sl[1].stop + reach + gap)
        letter = labels[y0:y1, x0:x1] == i
        if letter.sum() < 4:
            continue
        ring = ndi.binary_dilation(letter, iterations=reach + gap) & ~near[y0:y1, x0:x1]
        if not ring.any():
            continue
        g = grey[y0:y1, x0:x1]
        total += letter.sum() * (g[letter].mean() - g[ring].mean())
        weight += letter.sum()
    return float(total / weight) if weight else float("nan")


def _small(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An output brought back to the input's size (w, h) by area averaging."""
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BOX))


def _pictures(folder: Path, width: int | None) -> list[tuple[str, np.ndarray]]:
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
    out = []
    for f in files:
        rgb, _ = load_image(f, as_uint8=True)
        if width and rgb.shape[1] != width:
            h = round(rgb.shape[0] * width / rgb.shape[1])
            rgb = np.asarray(Image.fromarray(rgb).resize((width, h), Image.LANCZOS))
        out.append((f.stem, rgb))
    return out


def _stamps_for(pictures: list[np.ndarray], engine, tile: int) -> tuple[object, list, str | None]:
    """What `desample clean --shared` removes: the set's stamp (None: not used), where it sits in each
    picture (None: that picture is cleaned blind), and why the estimate was not used at all."""
    est = estimate_shared(pictures, engine, tile)
    reason = why_not_used(est)
    if reason:
        return None, [None] * len(pictures), reason
    return est, [off if used else None for off, used in zip(est.offsets, pictures_using(est), strict=True)], None


def score_picture(rgb: np.ndarray, out: np.ndarray, plain: np.ndarray, found: np.ndarray, ref: np.ndarray | None) -> dict:
    """The numbers of one picture and method: rgb the input (uint8), out and plain (the --no-detect
    output) at 2x, found the method's mask at input size, ref the reference mask (None: not carried)."""
    h, w = rgb.shape[:2]
    row: dict[str, float] = {}
    away = np.ones((h, w), bool) if ref is None else ~ndi.binary_dilation(ref, iterations=max(1, round(0.03 * w)))
    away2 = np.repeat(np.repeat(away, 2, axis=0), 2, axis=1)
    row["collateral"] = float(np.abs(out.astype(np.float32) - plain.astype(np.float32))[away2].mean())
    marked = found > 0.5
    row["marked_outside"] = float(marked[away].mean())  # share of the picture away from the stamp marked
    if ref is not None:
        before = stamp_contrast(luminance(rgb), ref)
        after = stamp_contrast(luminance(_small(out, (w, h))), ref)
        row.update(contrast_before=before, contrast_after=after)
        row["recall"] = float((marked & ref).sum() / max(ref.sum(), 1))
        near = ndi.binary_dilation(ref, iterations=max(1, round(0.01 * w)))
        row["precision"] = float((marked & near).sum() / marked.sum()) if marked.any() else float("nan")
    return row


def summarise(rows: list[dict]) -> dict:
    """The folder's numbers: residual = sum of contrasts after / before over the pictures carrying
    the reference stamp; the rest means (precision over pictures where anything was marked)."""
    carried = [r for r in rows if "contrast_before" in r]
    out = {"pictures": len(rows), "with_reference": len(carried)}
    if carried:
        before = sum(r["contrast_before"] for r in carried)
        after = sum(r["contrast_after"] for r in carried)
        out.update(contrast_before=before / len(carried), contrast_after=after / len(carried), residual=after / before,
                   recall=float(np.mean([r["recall"] for r in carried])),
                   precision=float(np.nanmean([r["precision"] for r in carried])) if any(
                       not np.isnan(r["precision"]) for r in carried) else float("nan"))
    out["collateral"] = float(np.mean([r["collateral"] for r in rows]))
    out["marked_outside"] = float(np.mean([r["marked_outside"] for r in rows]))
    return out


def run_real(folder: str | Path, engine, reference: Reference | None, widths: list[int | None], out: Path,
             methods: tuple[str, ...] = METHODS, tile: int = 512, log=print) -> dict:
    """Score `methods` on every picture of folder at each width (None: the pictures' own size);
    write out/real.json and return it."""
    folder = Path(folder)
    results: dict = {"folder": str(folder), "widths": {}}
    for width in widths:
        started = time.perf_counter()
        named = _pictures(folder, width)
        names, pictures = [n for n, _ in named], [p for _, p in named]
        label = str(width) if width else "full"
        est, offsets, reason = _stamps_for(pictures, engine, tile) if "shared" in methods else (None, [None] * len(pictures), None)
        per: dict[str, list[dict]] = {m: [] for m in methods}
        # The request path users run (api.clean), as `desample clean` and `clean --shared` run it on these lossy files.
        options = CleanOptions(tile=tile)
        for name, rgb, offset in zip(names, pictures, offsets, strict=True):
            h, w = rgb.shape[:2]
            ref = reference.at((w, h)) if reference is not None and name not in reference.without else None
            plain = clean((rgb, None), engine, replace(options, detect=False), lossless=False).rgb
            for m in methods:
                used = m == "shared" and offset is not None
                res = clean((rgb, None), engine, options, stamp=est if used else None, offset=offset, lossless=False)
                per[m].append({"picture": name, "shared_stamp_used": used if m == "shared" else None,
                               **score_picture(rgb, res.rgb, plain, res.mask, ref)})
        block = {m: {"summary": summarise(rows), "pictures": rows} for m, rows in per.items()}
        if "shared" in methods:
            block["shared"]["estimate_not_used"] = reason
        block["seconds"] = time.perf_counter() - started
        results["widths"][label] = block
        for m in methods:
            s = block[m]["summary"]
            log(f"{label:>5} {m:>6}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in s.items()))
    out.mkdir(parents=True, exist_ok=True)
    (out / "real.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "real.md").write_text(real_markdown(results))
    return results


def real_markdown(results: dict) -> str:
    lines = [f"Real previews: `{results['folder']}`", "",
             "| width | method | residual contrast | contrast before -> after | recall | precision | collateral (0-255) "
             "| marked away from the stamp |",
             "|---|---|---|---|---|---|---|---|"]
    for label, block in results["widths"].items():
        for m in METHODS:
            if m not in block:
                continue
            s = block[m]["summary"]
            if "residual" in s:
                lines.append(f"| {label} | {m} | {100 * s['residual']:.0f}% | {s['contrast_before']:.1f} -> {s['contrast_after']:.1f} | "
                             f"{s['recall']:.2f} | {s['precision']:.2f} | {s['collateral']:.2f} | {100 * s['marked_outside']:.1f}% |")
            else:
                lines.append(f"| {label} | {m} | - | - | - | - | {s['collateral']:.2f} | {100 * s['marked_outside']:.1f}% |")
    return "\n".join(lines) + "\n"
