"""The training loop: synthetic stamped pairs made in-process, L1 + mask losses, EMA, resume.

    desample train --out ~/.cache/desample/run --export desample/weights/default.safetensors

Pairs are made in the training process itself: on 2 cores a DataLoader worker competing with the
training threads was slower than making pairs between steps.
Checkpoints (`last.pt`, atomic) hold model, EMA, optimiser, step and timing; the run resumes from
`out/last.pt` when present, else from `init` weights (e.g. the shipped ones).
Write a number to `out/threads` to change the thread count of a running job (1 while you work).
"""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..data.pairs import CropSampler, flatten_alpha
from ..data.procedural import anime_picture
from ..data.sources import list_pictures, split_holdout
from ..engine.onnx_export import export_beside
from ..model.net import DesampleNet, NetConfig, count_parameters
from ..model.weights import clean_state_dict, load_weights, save_weights
from .config import TrainConfig
from .validation import build_validation_set, evaluate


def load_pictures(files: list[Path]) -> list[Image.Image]:
    """Decode once into memory (RGB, alpha flattened); unreadable files are skipped and counted."""
    pics, bad = [], 0
    rng = np.random.default_rng(0)
    for p in files:
        try:
            with Image.open(p) as im:
                im.load()
                pics.append(flatten_alpha(im, rng))
        except (OSError, SyntaxError, ValueError):
            bad += 1
    if bad:
        print(f"skipped {bad} unreadable picture(s)")
    return pics


def losses(out, batch: dict[str, torch.Tensor], cfg: TrainConfig, scale: int) -> dict[str, torch.Tensor]:
    mask = batch["mask"]  # (B, 1, p, p) in {0, 1}
    # Grow the mask a little: JPEG and the glow's tail spill past the binary mask.
    near = F.max_pool2d(mask, 5, stride=1, padding=2)
    w_lr = 1.0 + cfg.stamp_weight * near
    w_hr = F.interpolate(w_lr, scale_factor=scale, mode="nearest")
    l_hr = (w_hr * (out.sr - batch["hr"]).abs()).mean()
    l_lr = (w_lr * (out.lr - batch["lr"]).abs()).mean()
    p = torch.sigmoid(out.mask_logits)
    bce = F.binary_cross_entropy_with_logits(out.mask_logits, mask)
    dice = 1 - (2 * (p * mask).sum() + 1) / (p.sum() + mask.sum() + 1)
    # The matte and colour drive the exact inverse blend: supervise them directly.
    l_matte = (w_lr * (out.matte - batch["alpha"]).abs()).mean()
    a = batch["alpha"]
    l_color = (a * (out.color - batch["color"]).abs()).sum() / (3 * a.sum() + 1e-6)
    total = l_hr + cfg.lr_loss * l_lr + cfg.mask_loss * (bce + dice) + cfg.matte_loss * (l_matte + 0.5 * l_color)
    return {"loss": total, "l1_hr": l_hr, "l1_lr": l_lr, "bce": bce, "dice": dice, "matte": l_matte, "color": l_color}


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _read_threads(out: Path, current: int) -> int:
    f = out / "threads"
    try:
        n = int(f.read_text().strip())
    except (OSError, ValueError):
        return current
    if n > 0 and n != current:
        torch.set_num_threads(n)
        return n
    return current


def train(cfg: TrainConfig) -> None:
    from tqdm import tqdm

    out = Path(cfg.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    threads = cfg.threads
    torch.set_num_threads(threads)

    files = [f for d in cfg.data for f in list_pictures(d)]
    train_files, val_files = split_holdout(files, cfg.val_fraction)
    print(f"{len(train_files)} training and {len(val_files)} validation pictures from {cfg.data}")
    pictures = load_pictures(train_files)
    pictures += [anime_picture(640, 640, seed=10_000 + i) for i in range(cfg.procedural)]
    if not pictures:
        raise SystemExit("no training pictures: pass --data FOLDER or --procedural N")
    val_pictures = load_pictures(val_files) or [anime_picture(466, 660, seed=90_000 + i) for i in range(6)]
    val_set = build_validation_set(val_pictures)

    ckpt_path = out / "last.pt"
    state = None
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        model = DesampleNet(NetConfig.from_dict(state["net_config"]))
        model.load_state_dict(clean_state_dict(state["model"]))
        print(f"resuming from {ckpt_path} at step {state['step']}")
    elif cfg.init:
        model = load_weights(cfg.init).train()
        print(f"starting from weights {cfg.init}")
    else:
        model = DesampleNet(NetConfig.from_dict(cfg.net))
    ema = copy.deepcopy(model).eval()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)
    step, samples, wall, best = 0, 0, 0.0, -1e9
    if state is not None:
        ema.load_state_dict(clean_state_dict(state["ema"]))
        opt.load_state_dict(state["opt"])
        step, samples, wall, best = state["step"], state["samples"], state["wall"], state["best"]
    elif cfg.init:
        meta_path = Path(cfg.init).with_suffix(".json")
        if meta_path.exists():  # carry the shipped weights' history on
            meta = json.loads(meta_path.read_text())
            samples, wall = meta.get("samples", 0), meta.get("train_seconds", 0.0)
    for g in opt.param_groups:
        g["lr"] = cfg.lr
    print(f"model: {count_parameters(model) / 1e6:.2f} M parameters; {threads} thread(s)")
    (out / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")

    sampler = CropSampler(pictures, rng, scale=model.config.scale, pool_size=cfg.pool, guide_prob=cfg.guide_prob)
    log = open(out / "log.jsonl", "a")
    try:  # TensorBoard when installed (pip install tensorboard); log.jsonl always
        from torch.utils.tensorboard import SummaryWriter

        board = SummaryWriter(str(out / "tb"))
    except ImportError:
        board = None
    scale = model.config.scale
    start_step = step

    def checkpoint():
        _atomic_save(
            {"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "step": step,
             "samples": samples, "wall": wall, "best": best, "net_config": model.config.to_dict(),
             "train_config": cfg.to_dict()},
            ckpt_path,
        )

    bar = tqdm(total=cfg.steps, initial=step, dynamic_ncols=True, mininterval=5)
    running: dict[str, float] = {}
    while step < cfg.steps:
        t0 = time.time()
        patch = cfg.patch_late if step >= cfg.late_after else cfg.patch
        sampler.refresh(cfg.refresh)
        batch = {k: torch.from_numpy(v) for k, v in sampler.batch(cfg.batch, patch).items()}
        if state is None and step - start_step < cfg.warmup:  # a resumed optimiser needs no warm-up
            for g in opt.param_groups:
                g["lr"] = cfg.lr * (step - start_step + 1) / cfg.warmup
        model.train()
        out_ = model(batch["x"], batch["guide"])
        parts = losses(out_, batch, cfg, scale)
        opt.zero_grad(set_to_none=True)
        parts["loss"].backward()
        parts["grad_norm"] = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
                pe.lerp_(pm, 1 - cfg.ema)
        step += 1
        samples += cfg.batch
        wall += time.time() - t0
        for k, v in parts.items():
            running[k] = running.get(k, v.item()) * 0.98 + v.item() * 0.02
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{running['loss']:.4f}", samples_per_s=f"{cfg.batch / max(time.time() - t0, 1e-9):.1f}")
            threads = _read_threads(out, threads)
            log.write(json.dumps({"step": step, "samples": samples, "wall": round(wall, 1), "threads": threads,
                                  **{k: round(v, 5) for k, v in running.items()}}) + "\n")
            log.flush()
            if board:
                for k, v in running.items():
                    board.add_scalar(f"train/{k}", v, step)
        if step % cfg.ckpt_every == 0:
            checkpoint()
        if step % cfg.val_every == 0 or step == cfg.steps:
            metrics = evaluate(ema, val_set, scale)
            record = {"step": step, "samples": samples, "train_seconds": round(wall, 1), "val": metrics}
            if board:
                for k, v in metrics.items():
                    board.add_scalar(f"val/{k}", v, step)
            log.write(json.dumps(record) + "\n")
            log.flush()
            gain = metrics["psnr"] - metrics["bicubic_psnr"]
            tqdm.write(
                f"step {step}: PSNR {metrics['psnr']:.2f} (bicubic {metrics['bicubic_psnr']:.2f}, +{gain:.2f}) "
                f"in-stamp {metrics['psnr_in']:.2f} (bicubic {metrics['bicubic_psnr_in']:.2f}) "
                f"out {metrics['psnr_out']:.2f} (bicubic {metrics['bicubic_psnr_out']:.2f}) IoU {metrics['mask_iou']:.3f}"
            )
            if metrics["psnr"] > best:
                best = metrics["psnr"]
                meta = {"step": step, "samples": samples, "train_seconds": round(wall, 1), "val": metrics,
                        "val_pictures": len(val_pictures), "val_previews": len(val_set), "train_config": cfg.to_dict()}
                save_weights(ema, out / "best.safetensors", meta)
                if cfg.export:
                    save_weights(ema, cfg.export, meta)
                    export_beside(cfg.export)  # the ONNX twin the default engine runs
                tqdm.write(f"  new best: wrote {out / 'best.safetensors'}" + (f" and {cfg.export}" if cfg.export else ""))
            checkpoint()
    bar.close()
    checkpoint()
