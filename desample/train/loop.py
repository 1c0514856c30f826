"""The training loop: synthetic stamped pairs made in-process, L1 + mask losses, EMA, resume.

    desample train --out ~/.cache/desample/run --export desample/weights/default.safetensors
    torchrun --nproc_per_node=2 -m desample train --threads 1 ...      # DDP, same options

Pairs are made in the training process itself: on 2 cores a DataLoader worker competing with the
training threads was slower than making pairs between steps (big collections can still decode
pictures in workers: `workers`).
Checkpoints (`last.pt`, written atomically, the one before kept as `last.prev.pt`) hold model, EMA,
optimiser, step and timing; the run resumes from `out/last.pt` when present, else from `init`
weights (e.g. the shipped ones). Under torchrun rank 0 alone logs, validates and checkpoints; the
others receive its state by broadcast. An elastic restart (torchrun --max-restarts) resumes the
whole group from the last checkpoint.
Write a number to `out/threads` to change the thread count of a running job (1 while you work).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..data.index import IndexReader, ensure_index, shard_ids
from ..data.pairs import CropSampler
from ..data.procedural import anime_picture
from ..data.stream import PictureSource, load_pictures
from ..data.validation import VAL_LR_LONG, build_validation_set
from ..model.net import DesampleNet, NetConfig, count_parameters
from ..model.weights import clean_state_dict, grow, load_weights
from ..stamps.fonts import has_cjk_font, require_cjk_font
from ..stamps.synthesis import SYNTHESIS_VERSION
from .config import TrainConfig
from .distributed import Dist, init_distributed, no_sync_unless
from .precision import autocast, use_bf16
from .trainer import Trainer


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
    parts = {"l1_hr": l_hr, "l1_lr": l_lr, "bce": bce, "dice": dice, "matte": l_matte, "color": l_color}
    return {"loss": total, **parts}


# Share of a micro-batch's crops run a second time told "no stamp" for cfg.mode_consistency (one
# forward of the batch with them appended: about that much more time a step).
MODE_TWINS = 1 / 3


def forward_losses(model: torch.nn.Module, batch: dict[str, torch.Tensor], cfg: TrainConfig, scale: int,
                   bf16: bool = False) -> dict[str, torch.Tensor]:
    """The model on one micro-batch (trunk in bf16 when asked) and its losses (fp32: the net's outputs
    are); with cfg.mode_consistency, plus the gap between its blind and told-nothing outputs ("mode")."""
    x, guide = batch["x"], batch["guide"]
    n = len(x)
    twins = math.ceil(n * MODE_TWINS) if cfg.mode_consistency > 0 else 0
    if twins:
        nothing = torch.zeros_like(guide[:twins])
        nothing[:, 1] = 1.0
        x, guide = torch.cat([x, x[:twins]]), torch.cat([guide, nothing])
    with autocast(bf16, x.device):
        out = model(x, guide)
    parts = losses(out.first(n), batch, cfg, scale)
    if twins:
        first = {k: v[:twins] for k, v in batch.items()}
        parts["mode"] = mode_gap(out.sr[:twins], out.sr[n:], first, scale)
        parts["loss"] = parts["loss"] + cfg.mode_consistency * parts["mode"]
    return parts


def mode_gap(blind_sr: torch.Tensor, told_nothing_sr: torch.Tensor, batch: dict[str, torch.Tensor], scale: int) -> torch.Tensor:
    """Mean |blind 2x - told-nothing 2x| over the crops run blind, away from the stamp (its mask grown
    by 8 LR px). Both sides carry gradient: only what makes the two differ is trained by it."""
    blind = (batch["guide"][:, 1:2] == 0).float()
    away = blind * (1 - F.max_pool2d(batch["mask"], 17, stride=1, padding=8))
    away = F.interpolate(away, scale_factor=scale, mode="nearest")
    return (away * (blind_sr - told_nothing_sr).abs()).sum() / (3 * away.sum() + 1e-6)


def scheduled_lr(cfg: TrainConfig, step: int) -> float:
    """The learning rate at `step`: cfg.lr, cosine-decayed to cfg.lr_min between decay_from and decay_to."""
    if cfg.decay_to <= cfg.decay_from or step <= cfg.decay_from:
        return cfg.lr
    t = min(1.0, (step - cfg.decay_from) / (cfg.decay_to - cfg.decay_from))
    return cfg.lr_min + (cfg.lr - cfg.lr_min) * 0.5 * (1 + math.cos(math.pi * t))


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, micro_batches: list[dict[str, torch.Tensor]],
               cfg: TrainConfig, scale: int, bf16: bool = False) -> dict[str, float]:
    """One optimiser step over micro-batches (gradient accumulation); under DDP one all-reduce per step.

    The loss of each micro-batch is divided by their number, and DDP averages over ranks, so the
    gradient is the mean over the global batch whatever the split into ranks and micro-batches.
    """
    opt.zero_grad(set_to_none=True)
    n = len(micro_batches)
    logged: dict[str, float] = {}
    for i, batch in enumerate(micro_batches):
        with no_sync_unless(i == n - 1, model):
            parts = forward_losses(model, batch, cfg, scale, bf16)
            (parts["loss"] / n).backward()
        for k, v in parts.items():
            logged[k] = logged.get(k, 0.0) + v.item() / n
    logged["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip))
    opt.step()
    return logged


def load_checkpoint(out: Path) -> dict | None:
    """The latest readable checkpoint of a run folder (last.pt, else last.prev.pt), or None.

    A half-written one can't be met here: checkpoints are renamed into place only once complete
    (a `.tmp` left by a killed writer is never read).
    """
    for name in ("last.pt", "last.prev.pt"):
        path = out / name
        if not path.exists():
            continue
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file: try the one before
            print(f"warning: could not read {path} ({type(e).__name__}: {e}); trying the one before")
            continue
        state["from"] = str(path)
        return state
    return None


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


def _same_validation(saved: dict, saved_config: dict, cfg: TrainConfig) -> bool:
    """Whether a saved `best` was measured on the validation previews this run draws."""
    return (saved.get("synthesis", 1) == SYNTHESIS_VERSION
            and saved_config.get("val_size", TrainConfig.val_size) == cfg.val_size)


def _starting_state(cfg: TrainConfig, out: Path) -> dict:
    """Rank 0's view of where the run starts: a checkpoint, the init weights, or a new model."""
    state = load_checkpoint(out)
    if state is not None:
        print(f"resuming from {state['from']} at step {state['step']}")
        start = {**state, "resumed": True}
        if not _same_validation(state, state.get("train_config", {}), cfg) and (out / "best.safetensors").exists():
            start["rebaseline"] = str(out / "best.safetensors")
        return start
    start = {"step": 0, "samples": 0, "wall": 0.0, "best": -1e9, "resumed": False}
    if cfg.init:
        model = load_weights(cfg.init)
        print(f"starting from weights {cfg.init}")
        if cfg.net and NetConfig.from_dict({**model.config.to_dict(), **cfg.net}) != model.config:
            model = grow(model, cfg.net)  # same function, more blocks: see model.weights.grow
            print(f"grown to {cfg.net}: {count_parameters(model) / 1e6:.2f} M parameters")
        meta_path = Path(cfg.init).with_suffix(".json")
        if meta_path.exists():  # carry the shipped weights' history on
            meta = json.loads(meta_path.read_text())
            start.update(samples=meta.get("samples", 0), wall=meta.get("train_seconds", 0.0), step=meta.get("step", 0))
            # Same folders, same held-out split: only a better validation may overwrite those weights.
            were = meta.get("train_config", {})
            if were.get("data") == cfg.data and were.get("val_fraction") == cfg.val_fraction:
                start["best"] = meta.get("val", {}).get("psnr", start["best"])
                if not _same_validation(meta, were, cfg):
                    start["rebaseline"] = cfg.init
    else:
        model = DesampleNet(NetConfig.from_dict(cfg.net))
    start.update(model=model.state_dict(), net_config=model.config.to_dict())
    return start


def _pictures(cfg: TrainConfig, d: Dist) -> tuple[PictureSource, list[Image.Image]]:
    """This rank's endless training pictures, and (rank 0) the validation pictures."""
    index = None
    if cfg.data:
        # One process per machine walks the folders; the others wait, then read the cached index.
        if d.local_rank == 0:
            index = ensure_index(cfg.data, val_fraction=cfg.val_fraction, cache_dir=cfg.index_cache, rebuild=cfg.reindex)
        d.barrier()
        if index is None:
            index = ensure_index(cfg.data, val_fraction=cfg.val_fraction, cache_dir=cfg.index_cache)
    reader = IndexReader(index) if index else None
    train_ids = shard_ids(index, d.rank, d.world, "train") if index else np.zeros(0, np.int64)
    procedural = [anime_picture(640, 640, seed=10_000 + i) for i in range(d.rank, cfg.procedural, d.world)]
    source = PictureSource(reader, train_ids, seed=cfg.seed * 1000 + d.rank, extra=procedural, workers=cfg.workers,
                           in_memory=cfg.in_memory)
    val_pictures = validation_pictures(index, cfg) if d.main else []
    count = len(train_ids) + len(procedural)
    print(f"rank {d.rank}/{d.world}: {count} training pictures ({len(procedural)} procedural)"
          + (f", {len(val_pictures)} validation pictures from {cfg.data}" if d.main else ""))
    if source.bad:
        print(f"rank {d.rank}: skipped {source.bad} unreadable picture(s), e.g. {source.bad_files[0]}")
    return source, val_pictures


def crop_sampler(cfg: TrainConfig, source, rng: np.random.Generator, net: NetConfig) -> CropSampler:
    """Training crops as the config asks, for one process, a torchrun rank or a swarm peer alike."""
    return CropSampler(source, rng, scale=net.scale, pool_size=cfg.pool, guide_prob=cfg.guide_prob, dihedral=cfg.dihedral,
                       channel_shuffle=cfg.channel_shuffle, stamp_crops=cfg.stamp_crops, unstamped=cfg.unstamped,
                       guide_channels=net.guide_channels, light_spots=cfg.light_spots,
                       preview_stamps=cfg.preview_stamps, own_graphics=cfg.own_graphics, real_stamps=cfg.real_stamps,
                       large_previews=cfg.large_previews, noise_pictures=cfg.noise_pictures)


def validation_pictures(index, cfg: TrainConfig) -> list[Image.Image]:
    """The held-out pictures validation scores on: the index's "val" share, or procedural ones without data."""
    if index:
        reader = IndexReader(index)
        pictures = load_pictures([reader(int(i))[0] for i in shard_ids(index, 0, 1, "val", limit=cfg.val_max)])
        if pictures:
            return pictures
    k = cfg.val_size / VAL_LR_LONG  # drawn at the size validation uses (466x660 for previews of 330)
    return [anime_picture(round(466 * k), round(660 * k), seed=90_000 + i) for i in range(min(6, cfg.val_max))]


def train(cfg: TrainConfig) -> None:
    """Train (one process, or one rank of a torchrun group)."""
    d = init_distributed()
    try:
        _train(cfg, d)
    finally:
        d.close()


def _train(cfg: TrainConfig, d: Dist) -> None:
    from tqdm import tqdm

    out = Path(cfg.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed * 1000 + d.rank)  # each rank its own crops and stamps
    rng = np.random.default_rng([cfg.seed, d.rank])
    threads = cfg.threads
    torch.set_num_threads(threads)

    # Japanese stamps would silently become Latin ones, in training and in validation alike
    # (a bare machine scored the shipped weights 26.55 dB instead of 26.27 on such a set).
    if not cfg.allow_no_cjk_font:
        require_cjk_font()
    elif d.main and not has_cjk_font():
        print("WARNING: no CJK font found: Japanese stamps are drawn as Latin words (allow_no_cjk_font)")
    source, val_pictures = _pictures(cfg, d)
    val_set = build_validation_set(val_pictures, lr_long=cfg.val_size) if d.main else []

    start = d.broadcast(_starting_state(cfg, out) if d.main else None)
    model = DesampleNet(NetConfig.from_dict(start["net_config"]))
    model.load_state_dict(clean_state_dict(start["model"]))
    model.to(d.device).train()
    board = None
    if d.main:
        try:  # TensorBoard when installed (pip install tensorboard); log.jsonl always
            from torch.utils.tensorboard import SummaryWriter

            board = SummaryWriter(str(out / "tb"))
        except ImportError:
            pass
    # Rank 0 alone averages, validates, keeps the best and checkpoints.
    trainer = Trainer(cfg, out, model, start, val_set, len(val_pictures), board=board) if d.main else None
    bf16 = use_bf16(cfg.precision, d.device)
    if bf16:  # channels-last is what makes oneDNN's bf16 convolutions fast; the weights stay fp32
        model.to(memory_format=torch.channels_last)
    net = d.wrap(model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)
    if start.get("opt"):
        opt.load_state_dict(start["opt"])
    step, samples, wall = start["step"], start["samples"], start["wall"]
    resumed = start["resumed"]
    if d.main and start.get("rebaseline"):
        # The stamps drawn for validation changed since `best` was measured: measure the best
        # weights again on today's validation set, so only better weights replace them.
        trainer.best = trainer.score(load_weights(start["rebaseline"]).eval())["psnr"]
        print(f"validation set changed (stamp synthesis {SYNTHESIS_VERSION}, previews of {cfg.val_size} px): "
              f"{start['rebaseline']} scores {trainer.best:.4f} on it")
    del start
    for g in opt.param_groups:
        g["lr"] = scheduled_lr(cfg, step)
    global_batch = cfg.batch * cfg.accum * d.world
    if d.main:
        print(f"model: {count_parameters(model) / 1e6:.2f} M parameters; {d.world} process(es) x {threads} thread(s); "
              f"global batch {global_batch} ({d.world} x {cfg.accum} x {cfg.batch}); {'bf16 trunk' if bf16 else 'fp32'}")
        (out / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")

    sampler = crop_sampler(cfg, source, rng, model.config)
    fmt = torch.channels_last if bf16 else torch.contiguous_format  # of the batches, as of the model
    scale = model.config.scale
    start_step = step

    def checkpoint():
        trainer.checkpoint(opt=opt.state_dict(), step=step, samples=samples, wall=wall, world=d.world)

    bar = tqdm(total=cfg.steps, initial=step, dynamic_ncols=True, mininterval=5, disable=not d.main)
    running: dict[str, float] = {}
    while step < cfg.steps:
        t0 = time.time()
        patch = cfg.patch_late if step >= cfg.late_after else cfg.patch
        sampler.refresh(cfg.refresh)
        micro = [{k: torch.from_numpy(v).to(d.device, memory_format=fmt) for k, v in sampler.batch(cfg.batch, patch).items()}
                 for _ in range(cfg.accum)]
        warm = (step - start_step + 1) / cfg.warmup if not resumed and step - start_step < cfg.warmup else 1.0
        for g in opt.param_groups:  # a resumed optimiser needs no warm-up
            g["lr"] = scheduled_lr(cfg, step) * warm
        parts = train_step(net, opt, micro, cfg, scale, bf16)
        step += 1
        samples += global_batch
        wall += time.time() - t0
        if step % 50 == 0:
            bad_files = int(d.total(source.bad))  # skipped files of every rank, for rank 0's log
        if not d.main:
            if step % 50 == 0:
                threads = _read_threads(out, threads)
            continue
        trainer.average(step)
        for k, v in parts.items():
            running[k] = running.get(k, v) * 0.98 + v * 0.02
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{running['loss']:.4f}", samples_per_s=f"{global_batch / max(time.time() - t0, 1e-9):.1f}")
            threads = _read_threads(out, threads)
            trainer.log({"step": step, "samples": samples, "wall": round(wall, 1), "threads": threads, "world": d.world,
                         "bad_files": bad_files, "lr": opt.param_groups[0]["lr"], **{k: round(v, 5) for k, v in running.items()}})
        if step % cfg.ckpt_every == 0:
            checkpoint()
        if step % cfg.val_every == 0 or step == cfg.steps:
            trainer.validate(step, samples, wall, say=tqdm.write)
            checkpoint()
    bar.close()
    if d.main:
        checkpoint()
    if source.bad:
        print(f"rank {d.rank}: skipped {source.bad} unreadable picture(s): {', '.join(source.bad_files[:5])}")
    d.barrier()  # nobody leaves the group while rank 0 still validates and writes
