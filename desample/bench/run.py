"""`desample bench`: every method on the same stamped previews, with quality and speed numbers.

    desample bench --images ../shared/data/anime --out bench_out    # the validation split of that folder
    desample bench --out bench_out                                   # a procedural set, no data needed

The set is deterministic: the same pictures stamped with every kind the training knows (cycling
over kinds), the same as the training's validation set for the same folder.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import resource
import time
from pathlib import Path

import numpy as np

from ..data.pairs import Preview
from ..data.procedural import anime_picture
from ..data.sources import list_pictures, split_holdout
from ..data.validation import build_validation_set
from ..metrics import mask_f1, mask_iou, picture_metrics

METRICS = ("psnr", "psnr_y", "ssim", "psnr_in", "psnr_out", "delta_e")


def build_cases(images: str | None, limit: int | None, kinds_per_picture: int, use_all: bool = False,
                scale: int = 2) -> list[Preview]:
    """Stamped previews to enlarge `scale` times, with their truth: a folder's validation split (its
    pictures are the truth; previews are shrunk from them, to at most 330 px at 2x: at 4x the
    truth is the whole picture, whose size sets the preview's), or procedural pictures (233x330 previews)."""
    if images:
        from ..data.stream import load_pictures

        files = list_pictures(images)
        if not use_all:
            _, files = split_holdout(files)
        pictures = load_pictures(files)
        if not pictures:
            raise ValueError(f"no readable pictures in {images}" + ("" if use_all else " (validation split; try --all)"))
    else:
        pictures = [anime_picture(233 * scale, 330 * scale, seed=90_000 + i) for i in range(limit or 4)]
    if limit:
        pictures = pictures[:limit]
    return build_validation_set(pictures, scale=scale, kinds_per_picture=kinds_per_picture)


def scale_of(case: Preview) -> int:
    """How many times a case's truth is larger than its preview (2 or 4)."""
    return case.hr.shape[0] // case.stamped.shape[0]


def _mean(values):
    vals = [v for v in values if np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def _memory_child(method_name, model_path, engine_name, case, threads, queue):
    from ..engine.runtime import load_engine
    from .methods import build_methods

    engine = load_engine(model_path, engine_name, threads)
    [method] = build_methods(engine, [method_name], threads, scale_of(case))
    method.run(case)
    queue.put(_peak_rss_mb())


def _peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM belongs to the address space, so unlike ru_maxrss
    it does not carry over the parent's peak through fork + exec (Linux keeps ru_maxrss across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def peak_memory_mb(method_name: str, model_path: str | None, engine: str, case: Preview, threads: int) -> float:
    """Peak RSS of a fresh process that loads the method and runs it on one case (MB)."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_memory_child, args=(method_name, model_path, engine, case, threads, q))
    p.start()
    p.join(600)
    return float(q.get()) if p.exitcode == 0 and not q.empty() else float("nan")


def run_bench(cases: list[Preview], methods, model_path: str | None, threads: int, memory: bool = True, keep: int = 3,
              log=print, engine: str = "auto") -> tuple[dict, dict[str, list[np.ndarray]]]:
    """(results, outputs of each method on the first `keep` cases, for the crops figure)."""
    per_case = []
    summary = {}
    kept: dict[str, list[np.ndarray]] = {}
    for m in methods:
        m.run(cases[0])  # warm-up: model loading, first-call allocations
        rows = []
        for i, case in enumerate(cases):
            t0 = time.perf_counter()
            out = m.run(case)
            seconds = time.perf_counter() - t0
            row = {"method": m.name, "case": i, "kind": case.kind, "seconds": seconds,
                   "out_mpix_per_s": out.shape[0] * out.shape[1] / 1e6 / seconds}
            row.update(picture_metrics(out, case.hr, case.mask, scale_of(case)))
            rows.append(row)
            if i < keep and m.input == "stamped":
                kept.setdefault(m.name, []).append(out)
        if m.release:
            m.release()
        s = {k: _mean([r[k] for r in rows]) for k in (*METRICS, "seconds", "out_mpix_per_s")}
        s["seconds_median"] = float(np.median([r["seconds"] for r in rows]))
        s["input"], s["note"] = m.input, m.note
        if memory:
            biggest = max(cases, key=lambda c: c.stamped.shape[0] * c.stamped.shape[1])
            s["peak_rss_mb"] = peak_memory_mb(m.name, model_path, engine, biggest, threads)
        summary[m.name] = s
        per_case += rows
        log(f"{m.name:28s} PSNR {s['psnr']:6.2f}  in {s['psnr_in']:6.2f}  out {s['psnr_out']:6.2f}  "
            f"SSIM {s['ssim']:.4f}  {s['seconds_median']:.3f} s/picture")
    kinds = sorted({c.kind for c in cases})
    by_kind = {
        name: {k: {mt: _mean([r[mt] for r in per_case if r["method"] == name and r["kind"] == k]) for mt in ("psnr", "psnr_in")}
               for k in kinds}
        for name in summary
    }
    results = {"summary": summary, "by_kind": by_kind, "cases": per_case, "n_cases": len(cases), "threads": threads,
               "scale": scale_of(cases[0])}
    return results, kept


def detector_scores(cases: list[Preview], engine) -> dict:
    """Blind detection (threshold 0.5) against the true mask: mean IoU and F1, and IoU per stamp kind
    (the model issue's targets are per kind: large words and logos, tiled small text)."""
    from ..core import detect_stamp

    ious, f1s, by_kind = [], [], {}
    for c in cases:
        found = detect_stamp(c.stamped, engine) > 0.5
        ious.append(mask_iou(found, c.mask))
        f1s.append(mask_f1(found, c.mask))
        by_kind.setdefault(c.kind, []).append(ious[-1])
    return {"mask_iou": float(np.mean(ious)), "mask_f1": float(np.mean(f1s)),
            "iou_by_kind": {k: float(np.mean(v)) for k, v in sorted(by_kind.items())}}


def save_results(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
