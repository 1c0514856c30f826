"""`desample bench --shared K`: sets of K previews that share one stamp, blind vs. estimated vs. true stamp.

    desample bench --shared 8 --out docs/bench/shared                         # procedural pictures
    desample bench --shared 8 --images ../shared/data/anime --out bench_out   # a folder's validation split
    desample bench --shared 4 --shared-stamps preview --out bench_out         # see-through glowing words

Each set: K pictures cut to one preview size, one stamp (the classic glowing SAMPLE for the first
set, then random large words, Latin and Japanese), each stamped and JPEG'd as a preview is.
Methods, all at 2x: blind removal; the stamp estimated from the set, used as `desample clean
--shared` does (an exact inverse blend + painting of the opaque part, or blind removal when the
estimate does not explain the set: shared.POLICY.misfit_limit), always used that way, or as the model's
guide channel only; the true stamp (the bound); bicubic.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from ..core import restore
from ..data.pairs import Preview, flatten_alpha, make_preview
from ..data.procedural import anime_picture
from ..metrics import picture_metrics
from ..model.net import bicubic
from ..shared import estimate_shared, pictures_using
from ..stamps.synthesis import classic_sample_stamp, make_stamp, preview_stamp

LR_SIZE = (233, 330)  # (w, h) of a typical preview
STAMP_SETS = ("words", "preview")


def _fit(picture: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize to cover `size` and centre-crop: every picture of a set gets the same size."""
    w, h = size
    k = max(w / picture.width, h / picture.height)
    im = picture.resize((max(w, round(picture.width * k)), max(h, round(picture.height * k))), Image.BOX if k < 1 else Image.BICUBIC)
    x, y = (im.width - w) // 2, (im.height - h) // 2
    return im.crop((x, y, x + w, y + h))


def build_sets(pictures: list[Image.Image], k: int, n_sets: int, seed: int = 4321, stamps: str = "words") -> list[list[Preview]]:
    """n_sets sets of k previews, each set under one stamp: the classic SAMPLE for the first, then
    (stamps) "words": large words as make_stamp draws them (opaque, faint, with or without a glow),
    or "preview": large see-through glowing words, as on previews (synthesis.preview_stamp)."""
    if stamps not in STAMP_SETS:
        raise ValueError(f"stamps must be one of {STAMP_SETS}, not {stamps!r}")
    w, h = LR_SIZE
    sets = []
    for s in range(n_sets):
        rng = np.random.default_rng(seed + s)
        if s == 0:
            stamp = classic_sample_stamp(h, w)
        else:
            kind = "word" if s % 2 else "word_jp"
            stamp = make_stamp(h, w, rng, kind, extra=False) if stamps == "words" else preview_stamp(h, w, rng, kind)
        group = [pictures[(s * k + i) % len(pictures)] for i in range(k)]
        sets.append([make_preview(_fit(flatten_alpha(p), (2 * w, 2 * h)), np.random.default_rng(seed + 1000 * s + i), 2, stamp=stamp)
                     for i, p in enumerate(group)])
    return sets


def drawn_sets(folder: str | None, k: int, seeds: list[int]):
    """(seed, index, previews) of sets of k drawn as `desample bench --shared k` draws them, once per
    seed: 8 sets of the folder's held-out pictures, or 4 of procedural ones (folder None), for
    the measuring scripts in research/."""
    pictures = shared_pictures(folder, 64)
    for seed in seeds:
        for i, previews in enumerate(build_sets(pictures, k, 8 if folder else 4, seed=seed)):
            yield seed, i, previews


def run_shared(engine, pictures: list[Image.Image], k: int, n_sets: int, out: Path, log=print, stamps: str = "words") -> dict:
    sets = build_sets(pictures, k, n_sets, stamps=stamps)
    rows: dict[str, list[dict]] = {}
    matte_errors = []
    per_set = []
    for previews in sets:
        set_rows: dict[str, list[dict]] = {}
        est = estimate_shared([p.stamped for p in previews], engine)
        for p, offset, used in zip(previews, est.offsets, pictures_using(est), strict=True):
            matte, color = est.placed(p.stamped.shape[:2], offset)
            matte_errors.append({"whole": float(np.abs(matte - p.alpha).mean()),
                                 "in_stamp": float(np.abs(matte - p.alpha)[p.mask].mean())})
            blind = restore(p.stamped, engine).rgb
            unblended = restore(p.stamped, engine, stamp=(matte, color)).rgb
            outputs = {
                "desample (blind)": blind,
                # as `desample clean --shared` does: blind removal when the estimate does not explain the set,
                # or where a picture does not seem to carry it
                "desample --shared": unblended if used else blind,
                "estimated stamp, always used": unblended,
                "shared, guide channel only": restore(p.stamped, engine, mask=matte, detect=False).rgb,
                "true stamp (bound)": restore(p.stamped, engine, stamp=(p.alpha, np.ascontiguousarray(p.color))).rgb,
                "bicubic": bicubic(p.stamped, 2),
            }
            for name, rgb in outputs.items():
                set_rows.setdefault(name, []).append(picture_metrics(rgb, p.hr, p.mask, 2))
        # Which sets gain and which lose: a mean over sets hides a set where the estimate fails.
        set_error = float(np.mean([e["in_stamp"] for e in matte_errors[-len(previews):]]))
        per_set.append({"kind": previews[0].kind, "matte_mae_in_stamp": set_error, "misfit": est.misfit,
                        **{name: float(np.mean([r["psnr_in"] for r in rs])) for name, rs in set_rows.items()}})
        for name, rs in set_rows.items():
            rows.setdefault(name, []).extend(rs)
    summary = {name: {m: float(np.mean([r[m] for r in rs])) for m in ("psnr", "psnr_in", "psnr_out", "ssim")} for name, rs in rows.items()}
    results = {"k": k, "sets": n_sets, "pictures": k * n_sets, "stamps": stamps, "summary": summary,
               "matte_mae": {key: float(np.mean([e[key] for e in matte_errors])) for key in ("whole", "in_stamp")},
               "per_set_psnr_in": per_set}
    out.mkdir(parents=True, exist_ok=True)
    (out / "shared.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "shared.md").write_text(shared_markdown(results))
    log(shared_markdown(results))
    return results


def shared_markdown(r: dict) -> str:
    blind = r["summary"]["desample (blind)"]["psnr_in"]
    under = ("a see-through glowing word each (after the classic SAMPLE)" if r.get("stamps") == "preview"
             else "a stamp each (the classic SAMPLE, then large words)")
    lines = [f"{r['sets']} sets of {r['k']} previews ({LR_SIZE[0]}x{LR_SIZE[1]}) sharing {under}, 2x. "
             f"Estimated matte, mean absolute error: {r['matte_mae']['whole']:.4f} over the picture, "
             f"{r['matte_mae']['in_stamp']:.4f} inside the stamp.", "",
             "| method | PSNR | PSNR in stamp | vs blind in stamp | PSNR outside | SSIM |", "|---|---|---|---|---|---|"]
    for name, s in r["summary"].items():
        lines.append(f"| {name} | {s['psnr']:.2f} | {s['psnr_in']:.2f} | {s['psnr_in'] - blind:+.2f} "
                     f"| {s['psnr_out']:.2f} | {s['ssim']:.4f} |")
    if r.get("per_set_psnr_in"):
        names = list(r["summary"])
        lines += ["", "PSNR in the stamp, set by set:", "",
                  "| set | stamp | matte error in stamp | misfit | " + " | ".join(names) + " |", "|---" * (4 + len(names)) + "|"]
        for i, row in enumerate(r["per_set_psnr_in"]):
            misfit = "-" if row.get("misfit") is None else f"{row['misfit']:.2f}"
            lines.append(f"| {i} | {row['kind']} | {row['matte_mae_in_stamp']:.3f} | {misfit} | "
                         + " | ".join(f"{row[n]:.2f}" for n in names) + " |")
    return "\n".join(lines) + "\n"


def shared_pictures(images: str | None, count: int) -> list[Image.Image]:
    """The pictures for the sets: a folder's validation split, or procedural ones."""
    if not images:
        return [anime_picture(2 * LR_SIZE[0], 2 * LR_SIZE[1], seed=70_000 + i) for i in range(count)]
    from ..data.sources import list_pictures, split_holdout
    from ..data.stream import load_pictures

    _, files = split_holdout(list_pictures(images))
    pictures = load_pictures(files)
    if len(pictures) < 2:
        raise ValueError(f"too few readable pictures in the validation split of {images}")
    return pictures
