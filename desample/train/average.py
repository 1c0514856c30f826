"""`desample average`: the mean of several weights (a model soup), scored on training's validation set.

    desample average desample/weights/default.safetensors old.safetensors --data ../shared/data/anime \\
        -o desample/weights/default.safetensors

The output's JSON carries the validation numbers, as training writes them (so `desample.train.card`
reads it), with each input's own score on the same set, and the newest input's training record.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..data.index import ensure_index
from ..data.validation import build_validation_set
from ..engine.onnx_export import export_beside
from ..model.weights import average_weights, load_weights, save_weights
from ..paths import DEFAULT_SAFETENSORS
from ..stamps.synthesis import SYNTHESIS_VERSION
from .config import TrainConfig
from .loop import validation_pictures
from .validation import Scorer


def average_and_score(inputs: list[str], output: str, data: list[str], val_fraction: float = 0.1,
                      val_max: int = 64) -> dict:
    """Average `inputs` into `output` (with its JSON), scored beside each input; returns the output's metadata."""
    cfg = TrainConfig(data=list(data), val_fraction=val_fraction, val_max=val_max)
    index = ensure_index(cfg.data, val_fraction=cfg.val_fraction, cache_dir=cfg.index_cache) if cfg.data else None
    pictures = validation_pictures(index, cfg)
    val_set = build_validation_set(pictures)
    score = Scorer(val_set)
    metas = [_meta(p) for p in inputs]
    scores = [score(load_weights(p))["psnr"] for p in inputs]  # read before `output` may replace one
    model = average_weights(inputs)
    metrics = score(model)
    newest = max(metas, key=lambda m: m.get("step", 0))
    meta = {**newest, "val": metrics, "val_pictures": len(pictures), "val_previews": len(val_set),
            "synthesis": SYNTHESIS_VERSION,
            "averaged_from": [{"weights": str(p), "step": m.get("step"), "val_psnr": s}
                              for p, m, s in zip(inputs, metas, scores, strict=True)]}
    save_weights(model, output, meta)
    if Path(output).resolve() == Path(DEFAULT_SAFETENSORS).resolve():
        export_beside(output)  # the ONNX twin the default engine runs
    return meta


def _meta(path: str) -> dict:
    side = Path(path).with_suffix(".json")
    meta = json.loads(side.read_text()) if side.exists() else {}
    meta.pop("averaged_from", None)
    return meta


def main(args) -> int:
    meta = average_and_score(args.weights, args.output, args.data, args.val_fraction, args.val_max)
    for src in meta["averaged_from"]:
        print(f"{src['weights']} (step {src['step']}): PSNR {src['val_psnr']:.4f}")
    v = meta["val"]
    print(f"mean of {len(args.weights)}: PSNR {v['psnr']:.4f} (bicubic {v['bicubic_psnr']:.2f}) in-stamp {v['psnr_in']:.2f} "
          f"out {v['psnr_out']:.2f} IoU {v['mask_iou']:.3f}, on {meta['val_previews']} previews; wrote {args.output}")
    return 0
