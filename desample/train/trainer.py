"""What every training loop does once its weights have moved: the averages, validation that keeps
the best, checkpoints and the log.

`desample train` (one process, or rank 0 of a torchrun group) and `desample train --swarm` (a
hivemind peer) differ in how a step is taken (local AdamW and DDP, or averaging with peers); from
there on both drive one `Trainer`:

    trainer = Trainer(cfg, out, model, start, val_set, n_val_pictures)
    ... after each optimiser step:  trainer.average(step)
    ... every val_every steps:      trainer.validate(step, samples, wall)
    ... every ckpt_every steps:     trainer.checkpoint(step=..., samples=..., wall=..., opt=...)
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import torch

from ..engine.onnx_export import export_beside
from ..model.weights import clean_state_dict, save_weights
from ..stamps.synthesis import SYNTHESIS_VERSION
from .config import TrainConfig
from .validation import Scorer


def atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    if path.exists():  # keep the one before: a checkpoint damaged later on disk still has a fallback
        os.replace(path, path.with_name(path.stem + ".prev.pt"))
    os.replace(tmp, path)


class Trainer:
    """The EMA (and SWA) of `model`, its validation on `val_set`, the best weights kept, checkpoints.

    start: the run's starting state (train.loop._starting_state): its "ema", "swa", "swa_n" and
    "best" carry on. swa: whether this loop keeps a stochastic weight average (cfg.swa_from).
    meta: extra facts written with the best weights (e.g. {"swarm": True}).
    """

    def __init__(self, cfg: TrainConfig, out: Path, model: torch.nn.Module, start: dict, val_set: list,
                 n_val_pictures: int, swa: bool = True, meta: dict | None = None, board=None):
        self.cfg, self.out, self.model, self.board, self.meta = cfg, out, model, board, meta or {}
        self.ema = copy.deepcopy(model).eval()
        if start.get("ema"):
            self.ema.load_state_dict(clean_state_dict(start["ema"]))
        self.swa, self.swa_n, self.keeps_swa = None, 0, swa
        if swa and start.get("swa"):
            self.swa, self.swa_n = copy.deepcopy(model).eval(), start["swa_n"]
            self.swa.load_state_dict(clean_state_dict(start["swa"]))
        self.best = start["best"]
        self.score = Scorer(val_set, model.config.scale)
        self.n_val_pictures, self.n_val_previews = n_val_pictures, len(val_set)
        self.log_file = open(out / "log.jsonl", "a")

    def average(self, step: int) -> None:
        """Move the EMA towards the weights; from cfg.swa_from, every swa_every steps, add a snapshot to the SWA."""
        cfg = self.cfg
        with torch.no_grad():
            for pe, pm in zip(self.ema.parameters(), self.model.parameters(), strict=True):
                pe.lerp_(pm, 1 - cfg.ema)
            if self.keeps_swa and cfg.swa_from and step >= cfg.swa_from and step % cfg.swa_every == 0:
                if self.swa is None:
                    self.swa = copy.deepcopy(self.model).eval()
                self.swa_n += 1
                for ps, pm in zip(self.swa.parameters(), self.model.parameters(), strict=True):
                    ps.lerp_(pm, 1 / self.swa_n)  # the running mean of swa_n snapshots

    def log(self, record: dict) -> None:
        self.log_file.write(json.dumps(record) + "\n")
        self.log_file.flush()
        if self.board and "val" not in record:
            for k, v in record.items():
                if k not in ("step", "samples", "wall", "threads", "world", "bad_files", "lr", "local_steps"):
                    self.board.add_scalar(f"train/{k}", v, record["step"])

    def validate(self, step: int, samples: int, wall: float, say=print) -> dict:
        """Score the EMA (and the SWA), log it, and keep the better of them if it beats the best so far:
        OUT/best.safetensors, and cfg.export with its ONNX twin."""
        metrics = self.score(self.ema)
        record = {"step": step, "samples": samples, "train_seconds": round(wall, 1), "val": metrics}
        kept, kept_as = self.ema, "ema"
        if self.swa is not None:
            record.update(val_swa=self.score(self.swa), swa_n=self.swa_n)
            say(f"step {step}: mean of {self.swa_n} snapshots (SWA): PSNR {record['val_swa']['psnr']:.2f}")
        if self.board:
            for k, v in metrics.items():
                self.board.add_scalar(f"val/{k}", v, step)
        self.log(record)
        gain = metrics["psnr"] - metrics["bicubic_psnr"]
        say(f"step {step}: PSNR {metrics['psnr']:.2f} (bicubic {metrics['bicubic_psnr']:.2f}, +{gain:.2f}) "
            f"in-stamp {metrics['psnr_in']:.2f} (bicubic {metrics['bicubic_psnr_in']:.2f}) "
            f"out {metrics['psnr_out']:.2f} (bicubic {metrics['bicubic_psnr_out']:.2f}) IoU {metrics['mask_iou']:.3f}")
        if self.swa is not None and record["val_swa"]["psnr"] > metrics["psnr"]:
            metrics, kept, kept_as = record["val_swa"], self.swa, f"mean of {self.swa_n} snapshots from step {self.cfg.swa_from}"
        if metrics["psnr"] > self.best:
            self.best = metrics["psnr"]
            meta = {"step": step, "samples": samples, "train_seconds": round(wall, 1), "val": metrics, "weights": kept_as,
                    "val_pictures": self.n_val_pictures, "val_previews": self.n_val_previews, "synthesis": SYNTHESIS_VERSION,
                    "train_config": self.cfg.to_dict(), **self.meta}
            save_weights(kept, self.out / "best.safetensors", meta)
            if self.cfg.export:
                save_weights(kept, self.cfg.export, meta)
                export_beside(self.cfg.export)  # the ONNX twin the default engine runs
            say(f"  new best: wrote {self.out / 'best.safetensors'}" + (f" and {self.cfg.export}" if self.cfg.export else ""))
        return metrics

    def checkpoint(self, **loop_state) -> None:
        """OUT/last.pt, atomically: the weights, the averages and the best, plus the loop's own state
        (step, samples, wall, its optimiser's state under the loop's own key, ...)."""
        atomic_save({"model": self.model.state_dict(), "ema": self.ema.state_dict(), "best": self.best,
                     "swa": self.swa.state_dict() if self.swa is not None else None, "swa_n": self.swa_n,
                     "net_config": self.model.config.to_dict(), "synthesis": SYNTHESIS_VERSION,
                     "train_config": self.cfg.to_dict(), **loop_state}, self.out / "last.pt")
