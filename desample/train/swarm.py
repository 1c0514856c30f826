"""Volunteer training over the internet: peers that come and go, on hivemind (an extra).

    pip install -e '.[swarm]'
    desample train --swarm --out ~/.cache/desample/swarm            # the first peer: prints its address
    desample train --swarm --initial-peers /ip4/HOST/tcp/PORT/p2p/ID --out ...   # any other, any time

DDP needs a fixed group and a restart when anyone leaves; a swarm doesn't. Each peer
accumulates gradients of its own pictures until the peers together have `swarm_batch` samples
(one "epoch" in hivemind's words, one optimiser step here); then they average gradients and all
take the same step. A peer that joins late downloads the current weights and optimiser state
from the others; a peer that leaves only makes the next steps slower. `steps` counts these
global steps, so every peer stops at the same one with the same weights (one step apart when a
peer's last averaging round finds nobody left to average with).

Each peer keeps its own checkpoint (`out/last.pt`) and resumes from it, or from the swarm's state
when it is behind. Peers given `--export` validate (rank-0 style) and write the best weights.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from ..data.validation import build_validation_set
from ..model.net import DesampleNet, NetConfig, count_parameters
from ..model.weights import clean_state_dict
from .config import TrainConfig
from .distributed import Dist
from .loop import _pictures, _starting_state, crop_sampler, forward_losses, scheduled_lr
from .trainer import Trainer


def _hivemind():
    try:
        import hivemind
    except ImportError as e:
        raise SystemExit("--swarm needs hivemind: pip install -e '.[swarm]'") from e
    return hivemind


JOIN_WAIT = 60.0  # seconds a joining peer waits to see the others' progress before it trains alone


def _wait_for_swarm(opt) -> None:
    """Wait until this peer's tracker has read another peer's progress from the DHT. Asked right
    after connecting, load_state_from_peers() can find nobody and the peer would train alone from
    step 0 until the tracker's next refresh (up to 10 s later; seen in tests)."""
    deadline = time.time() + JOIN_WAIT
    while time.time() < deadline:
        progress = opt.tracker.global_progress
        if progress.num_peers >= 2 or progress.epoch > opt.local_epoch:
            return
        time.sleep(0.2)
    print(f"no other peer seen within {JOIN_WAIT:.0f} s: training alone until one appears", flush=True)


def lr_schedule(cfg: TrainConfig):
    """hivemind's scheduler factory: the learning rate of `scheduled_lr` at the swarm's step (hivemind
    steps it once per swarm step, and a late joiner's up to the swarm's step)."""
    return lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda step: scheduled_lr(cfg, step) / cfg.lr)


def train_swarm(cfg: TrainConfig) -> None:
    from tqdm import tqdm

    hivemind = _hivemind()
    import logging

    debug = bool(os.environ.get("DESAMPLE_SWARM_DEBUG"))  # hivemind's own account of matchmaking and averaging
    if not debug:
        logging.getLogger("hivemind").setLevel(logging.WARNING)  # its INFO lines come several per second
    if cfg.precision == "bf16":
        print("warning: a swarm peer trains in fp32: --precision bf16 is for `desample train` (one process or torchrun)",
              flush=True)
    if cfg.swa_from:
        print("warning: swa_from is ignored by a swarm peer (it keeps its EMA): averaging runs in `desample train` "
              "without --swarm, or `desample average` over exported weights")
    out = Path(cfg.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    peer_seed = int(np.random.SeedSequence().entropy % 2**31)  # peers must not all draw the same crops
    torch.manual_seed(peer_seed)
    torch.set_num_threads(cfg.threads)

    dht = hivemind.DHT(start=True, initial_peers=list(cfg.initial_peers),
                       host_maddrs=[f"/ip4/{cfg.swarm_host}/tcp/{cfg.swarm_port}"])
    addresses = [str(a) for a in dht.get_visible_maddrs()]
    (out / "peer_addresses.txt").write_text("\n".join(addresses) + "\n")
    print("this peer: others join with --initial-peers " + " ".join(addresses), flush=True)

    source, val_pictures = _pictures(cfg.updated({"seed": peer_seed % 100_000}), Dist())
    validating = bool(cfg.export)
    val_set = build_validation_set(val_pictures, lr_long=cfg.val_size) if validating else []
    start = _starting_state(cfg, out)
    model = DesampleNet(NetConfig.from_dict(start["net_config"]))
    model.load_state_dict(clean_state_dict(start["model"]))
    model.train()
    # A peer keeps its EMA (no SWA: averaging over snapshots is `desample average`'s job here).
    trainer = Trainer(cfg, out, model, start, val_set, len(val_pictures), swa=False, meta={"swarm": True})
    samples, wall = start["samples"], start["wall"]

    opt = hivemind.Optimizer(
        dht=dht, run_id=cfg.run_id, params=model.parameters(),
        optimizer=lambda params: torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.0),
        scheduler=lr_schedule(cfg),
        batch_size_per_step=cfg.batch * cfg.accum, target_batch_size=cfg.swarm_batch,
        matchmaking_time=cfg.matchmaking_time, averaging_timeout=cfg.averaging_timeout, verbose=debug,
    )
    if start.get("swarm_opt"):
        opt.load_state_dict(start["swarm_opt"])
    if cfg.initial_peers:
        _wait_for_swarm(opt)
    opt.load_state_from_peers()  # a late joiner takes the swarm's weights, optimiser and step
    print(f"model: {count_parameters(model) / 1e6:.2f} M parameters; swarm step {opt.local_epoch}; "
          f"{cfg.swarm_batch} samples per step over all peers", flush=True)
    sampler = crop_sampler(cfg, source, np.random.default_rng(peer_seed), model.config)
    scale = model.config.scale

    def checkpoint():
        trainer.checkpoint(swarm_opt=opt.state_dict(), step=opt.local_epoch, samples=samples, wall=wall)

    bar = tqdm(total=cfg.steps, initial=opt.local_epoch, dynamic_ncols=True, mininterval=5)
    epoch, local_steps = opt.local_epoch, 0
    try:
        while opt.local_epoch < cfg.steps:
            t0 = time.time()
            patch = cfg.patch_late if opt.local_epoch >= cfg.late_after else cfg.patch
            sampler.refresh(cfg.refresh)
            opt.zero_grad()
            for _ in range(cfg.accum):
                batch = {k: torch.from_numpy(v) for k, v in sampler.batch(cfg.batch, patch).items()}
                parts = forward_losses(model, batch, cfg, scale)
                (parts["loss"] / cfg.accum).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()  # accumulates; at the swarm's batch it averages with the peers and steps
            local_steps += 1
            samples += cfg.batch * cfg.accum
            wall += time.time() - t0
            if opt.local_epoch == epoch:
                continue
            bar.update(opt.local_epoch - epoch)
            epoch = opt.local_epoch
            trainer.average(epoch)  # the weights change once per swarm step: average them there
            trainer.log({"step": epoch, "local_steps": local_steps, "samples": samples, "wall": round(wall, 1),
                         "loss": round(parts["loss"].item(), 5), "bad_files": source.bad})
            if epoch % cfg.ckpt_every == 0:
                checkpoint()
            if validating and (epoch % cfg.val_every == 0 or epoch >= cfg.steps):
                trainer.validate(epoch, samples, wall, say=tqdm.write)
        bar.close()
    finally:
        opt.shutdown()  # waits for the last background averaging of the weights
        dht.shutdown()
    checkpoint()
    print(f"done at swarm step {opt.local_epoch} after {local_steps} local steps ({samples} samples here)", flush=True)
