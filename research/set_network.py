"""An experiment of session 29 (issue 5), not used by desample: a small network that sees a whole set
of pictures under one stamp at once and estimates the stamp. Kept to reproduce it; the numbers are
in docs/shared_stamp.md, "Session 29".

Why it was tried: from 4 pictures the classic estimate (stamps.estimate) misjudges faint stamps, and
the sparse-gradient prior it is refined with scores the true stamp worse than the estimate. Every
picture goes through the same small U-Net, and at each level each picture's features are joined with
the set's mean and maximum (a DeepSets exchange: any number of pictures, any order), so what the set
shares stands out; the set's features, averaged, give one matte and one colour. Measured: as good a
matte as the classic estimate (error in the stamp 0.086), mixed with it 0.082, but PSNR inside the
stamp after `--shared` 23.07-23.10 dB against 23.14: not kept.

    python research/set_network.py train --data ../shared/data/anime --out ~/.cache/desample/setnet1 \
        --export ~/.cache/desample/setnet1.safetensors --steps 4000          # 39 min on 2 threads
    python research/set_network.py train --data ../shared/data/anime --out ~/.cache/desample/setnet2 \
        --export ~/.cache/desample/setnet2.safetensors --steps 3000 --lr 5e-4 --faint 0.5 \
        --inversion-weight 2 --init ~/.cache/desample/setnet1.safetensors --seed 1
    python research/set_network.py measure ~/.cache/desample/setnet2.safetensors hintmix   # or: set, mix, hint
    python research/set_network.py measure - base-norefine     # or base, base-norefit: the set network not used
    python research/set_network.py measure ~/.cache/desample/setnet2.safetensors hintmix ../shared/data/anime 4  # real sets

Training: sets of 2-8 crops of different pictures (the folder's training split and procedural ones)
cut at the same place of one stamp (stamps.synthesis, every kind, words weighted up), JPEG'd. Losses:
the matte (BCE + L1), the premultiplied colour a*W, and each picture inverted with the estimate,
(J - a*W) / (1 - a), against the picture under the stamp where it shows through. Resumes from OUT/last.pt.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from desample.data.pairs import random_jpeg
from desample.data.procedural import anime_picture
from desample.stamps.synthesis import Stamp, apply_stamp, classic_sample_stamp, make_stamp


@dataclass
class SetNetConfig:
    widths: tuple[int, int, int] = (24, 48, 64)  # channels at 1, 1/2, 1/4 of LR

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SetNetConfig:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in cls.__dataclass_fields__})


class SetExchange(nn.Module):
    """x (K, C, H, W) -> x + f([x, mean_k x, max_k x]): each picture learns what the set shares."""

    def __init__(self, ch: int):
        super().__init__()
        self.mix = nn.Sequential(nn.Conv2d(3 * ch, ch, 1), nn.LeakyReLU(0.1, inplace=True), nn.Conv2d(ch, ch, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = x.shape[0]
        mean = x.mean(0, keepdim=True).expand(k, -1, -1, -1)
        peak = x.amax(0, keepdim=True).expand(k, -1, -1, -1)
        return x + self.mix(torch.cat([x, mean, peak], 1))


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.LeakyReLU(0.1, inplace=True))


class SetMatteNet(nn.Module):
    multiple = 4

    def __init__(self, config: SetNetConfig | None = None, in_channels: int = 6):
        super().__init__()
        self.config = config = config or SetNetConfig()
        w0, w1, w2 = config.widths
        # Per picture: the picture and its difference from the set's mean (what the stamp does not explain).
        self.head = _conv(in_channels, w0)
        self.x0 = SetExchange(w0)
        self.down1 = _conv(w0, w1, 2)
        self.x1 = SetExchange(w1)
        self.down2 = _conv(w1, w2, 2)
        self.x2a, self.x2b = SetExchange(w2), SetExchange(w2)
        self.up2 = nn.Sequential(nn.Conv2d(w2, 4 * w1, 1), nn.PixelShuffle(2))
        self.x1b = SetExchange(w1)
        self.up1 = nn.Sequential(nn.Conv2d(w1, 4 * w0, 1), nn.PixelShuffle(2))
        self.x0b = SetExchange(w0)
        self.out = nn.Sequential(_conv(w0, w0), nn.Conv2d(w0, 4, 3, padding=1))

    def forward(self, pictures: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pictures (K, 3, H, W) -> (matte (1, H, W), colour (3, H, W))."""
        r = self.logits(pictures)
        return torch.sigmoid(r[:1]), torch.sigmoid(r[1:])

    def logits(self, pictures: torch.Tensor) -> torch.Tensor:
        """(4, H, W): the matte's logit and the colour's."""
        centred = pictures - pictures.mean(0, keepdim=True)
        return self.trunk(torch.cat([pictures, centred], 1))

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Per-picture inputs (K, in_channels, H, W) -> the set's one answer (4, H, W)."""
        f0 = self.x0(self.head(x))
        f1 = self.x1(self.down1(f0))
        f2 = self.x2b(self.x2a(self.down2(f1)))
        g1 = self.x1b(self.up2(f2) + f1)
        g0 = self.x0b(self.up1(g1) + f0)
        return self.out(g0).mean(0)

    def config_dict(self) -> dict:
        return self.config.to_dict()


SEE_THROUGH = 0.7  # as ops.UNBLEND_UP_TO: where `--shared` inverts the blend


def lr_pictures(folder: str | None, procedural: int, seed: int = 90_000) -> list[np.ndarray]:
    """uint8 LR pictures (long side 330-500, as previews), the folder's training split and procedural ones."""
    pics = []
    if folder:
        from desample.data.sources import list_pictures, split_holdout
        from desample.data.stream import load_pictures

        train, _ = split_holdout(list_pictures(folder))
        for i, im in enumerate(load_pictures(train)):
            long = 330 + 170 * (i % 3) // 2
            k = long / max(im.size)
            pics.append(np.asarray(im.resize((max(96, round(im.width * k)), max(96, round(im.height * k))), Image.BOX)))
    for i in range(procedural):
        pics.append(np.asarray(anime_picture(466, 660, seed=seed + i).resize((233, 330), Image.BOX)))
    return pics


def stamp_pool(n: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """n stamps (alpha (H, W), colour (H, W, 3)) drawn for preview-sized pictures."""
    pool = []
    for i in range(n):
        h, w = [(330, 233), (233, 330), (300, 300)][i % 3]
        if i % 25 == 0:
            s = classic_sample_stamp(h, w, opacity=float(rng.uniform(0.2, 0.8)))
        elif i % 2:
            s = make_stamp(h, w, rng, str(rng.choice(["word", "word_jp"])), extra=bool(rng.random() < 0.3))
        else:
            s = make_stamp(h, w, rng)
        pool.append((s.alpha, np.broadcast_to(s.color, (h, w, 3)).astype(np.float32)))
    return pool


def draw_set(pics, stamps, rng: np.random.Generator, size: int, faint: float = 0.0):
    """(J (K,3,s,s), I (K,3,s,s), a (1,s,s), W (3,s,s)) tensors of one set; a share `faint` of the
    stamps made 1-4x fainter (faint stamps are where the classic estimate errs most)."""
    alpha, color = stamps[int(rng.integers(len(stamps)))]
    if rng.random() < faint:
        alpha = alpha * float(rng.uniform(0.25, 1.0))
    ys, xs = np.nonzero(alpha > 0.05)
    if len(ys) == 0:
        ys, xs = np.array([alpha.shape[0] // 2]), np.array([alpha.shape[1] // 2])
    j = int(rng.integers(len(ys)))
    y = int(np.clip(ys[j] - rng.integers(size), 0, alpha.shape[0] - size))
    x = int(np.clip(xs[j] - rng.integers(size), 0, alpha.shape[1] - size))
    a, w = alpha[y : y + size, x : x + size], color[y : y + size, x : x + size]
    k = int(rng.integers(2, 9))
    stamped, under = [], []
    for idx in rng.choice(len(pics), size=k, replace=False):
        p = pics[idx]
        py, px = int(rng.integers(p.shape[0] - size + 1)), int(rng.integers(p.shape[1] - size + 1))
        crop = p[py : py + size, px : px + size].astype(np.float32) / 255
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = np.ascontiguousarray(crop)
        stamped.append(random_jpeg(np.clip(apply_stamp(crop, Stamp(alpha=a, color=w, kind="")), 0, 1), rng))
        under.append(crop)

    def t(x):
        return torch.from_numpy(np.ascontiguousarray(x)).float()

    return (t(np.stack(stamped)).permute(0, 3, 1, 2), t(np.stack(under)).permute(0, 3, 1, 2), t(a)[None], t(w).permute(2, 0, 1))


def set_loss(model: SetMatteNet, stamped, under, alpha, color, inversion_weight: float = 0.5) -> tuple[torch.Tensor, dict]:
    r = model.logits(stamped)
    matte, est_color = torch.sigmoid(r[:1]), torch.sigmoid(r[1:])
    # BCE on the matte: an L1 through the sigmoid collapsed to "no stamp anywhere" (its gradient vanishes there)
    matte_bce = torch.nn.functional.binary_cross_entropy_with_logits(r[:1], alpha)
    matte_l1 = (matte - alpha).abs().mean()
    premult_l1 = (matte * est_color - alpha * color).abs().mean()
    a = matte.clamp(max=SEE_THROUGH)
    inverted = (stamped - a * est_color) / (1 - a)
    region = ((alpha > 0.01) & (alpha < SEE_THROUGH)).float()
    inversion = ((inverted - under).abs() * region).sum() / (3 * stamped.shape[0] * region.sum() + 1)
    loss = matte_bce + matte_l1 + premult_l1 + inversion_weight * inversion
    return loss, {"matte": matte_l1.item(), "premult": premult_l1.item(), "inversion": inversion.item()}


def export(model: SetMatteNet, path: Path, meta: dict) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().half().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"config": json.dumps(model.config.to_dict()), "meta": json.dumps(meta)})


def load_set_model(path: str | Path) -> SetMatteNet:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k).float() for k in f.keys()}
    model = SetMatteNet(SetNetConfig.from_dict(json.loads(meta["config"])))
    model.load_state_dict(state)
    return model.eval()


def train(argv) -> None:
    ap = argparse.ArgumentParser(description="train the set network")
    ap.add_argument("--data", default=None)
    ap.add_argument("--procedural", type=int, default=120)
    ap.add_argument("--out", required=True)
    ap.add_argument("--export", default=None)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--sets", type=int, default=4, help="sets per step")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stamps", type=int, default=800)
    ap.add_argument("--faint", type=float, default=0.0, help="share of stamps made up to 4x fainter")
    ap.add_argument("--inversion-weight", type=float, default=0.5)
    ap.add_argument("--init", default=None, help="start from these set-network weights (safetensors)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    t0 = time.time()
    pics = lr_pictures(args.data, args.procedural)
    stamps = stamp_pool(args.stamps, rng)
    print(f"{len(pics)} pictures, {len(stamps)} stamps ({time.time() - t0:.0f} s)", flush=True)
    model = load_set_model(args.init).train() if args.init else SetMatteNet()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    step = 0
    if (out / "last.pt").exists():
        ck = torch.load(out / "last.pt", weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        step, rng = ck["step"], ck["rng"]
        print(f"resumed at step {step}", flush=True)
    log = open(out / "log.jsonl", "a")
    running: dict[str, float] = {}
    while step < args.steps:
        opt.zero_grad()
        for _ in range(args.sets):
            loss, parts = set_loss(model, *draw_set(pics, stamps, rng, args.size, args.faint), inversion_weight=args.inversion_weight)
            (loss / args.sets).backward()
            for k, v in parts.items():
                running[k] = running.get(k, 0.0) + v / args.sets
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        if step % 50 == 0:
            row = {"step": step, **{k: v / 50 for k, v in running.items()}, "elapsed": time.time() - t0}
            print(json.dumps(row), flush=True)
            log.write(json.dumps(row) + "\n")
            log.flush()
            running = {}
        if step % 250 == 0 or step == args.steps:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "step": step, "rng": rng},
                       out / "last.pt.tmp")
            (out / "last.pt.tmp").replace(out / "last.pt")
            if args.export:
                export(model, Path(args.export).expanduser(), {"step": step, "data": str(args.data), "procedural": args.procedural})


def set_estimate(est, pictures: list[np.ndarray], model: SetMatteNet, margin: int = 16):
    """The set network's stamp in est's frame grown by `margin` px (pictures aligned by est.offsets)."""
    from desample.stamps.estimate import MIN_MATTE, OPAQUE, StampEstimate, _in_frame

    h, w = est.matte.shape
    frame = (-(-(h + 2 * margin) // model.multiple) * model.multiple, -(-(w + 2 * margin) // model.multiple) * model.multiple)
    offsets = [(oy - margin, ox - margin) for oy, ox in est.offsets]
    stack = _in_frame(pictures, offsets, frame)  # NaN where a picture does not reach: the set's mean there
    reached = np.isfinite(stack)
    mean = np.nan_to_num(np.nansum(np.nan_to_num(stack), 0) / np.maximum(reached.sum(0), 1), nan=0.5)
    stack = np.where(reached, stack, mean)
    with torch.no_grad():
        matte, color = model(torch.from_numpy(stack).permute(0, 3, 1, 2).float())
    matte = matte[0].numpy()
    matte = np.where(matte >= MIN_MATTE, np.minimum(matte, OPAQUE), 0).astype(np.float32)
    return StampEstimate(matte=matte, color=color.permute(1, 2, 0).numpy().astype(np.float32), offsets=offsets)


def _mixed_estimates(est, other, margin: int, share: float):
    """est (placed `margin` px inside other's frame) and other mixed, premultiplied colours averaged."""
    from desample.stamps.estimate import MIN_MATTE, StampEstimate

    matte, color = np.zeros_like(other.matte), np.zeros_like(other.color)
    h, w = est.matte.shape
    matte[margin : margin + h, margin : margin + w] = est.matte
    color[margin : margin + h, margin : margin + w] = est.color
    a = (1 - share) * matte + share * other.matte
    premult = (1 - share) * matte[..., None] * color + share * other.matte[..., None] * other.color
    mixed = np.clip(premult / np.maximum(a[..., None], 1e-3), 0, 1)
    return StampEstimate(matte=np.where(a >= MIN_MATTE, a, 0).astype(np.float32), color=mixed.astype(np.float32), offsets=other.offsets)


def shared_estimate(pictures: list[np.ndarray], engine, model: SetMatteNet, mode: str):
    """shared.estimate_shared with the set network's estimate used one way (`mode`):
    set: instead of the classic estimate; mix: half and half with it; hint: as the classic estimate's
    hint instead of the mean of each picture's network matte; hintmix: half and half with that mean;
    base: not at all (`--shared` as it is); base-norefine / base-norefit: without that step."""
    from desample import core, ops, shared
    from desample.stamps.estimate import confirmed_by, estimate_stamp, filled_where_seen, refine_stamp, refit_to_cleans

    floats = [ops.as_float(p) for p in pictures]
    found, mattes, cleans = [], [], []
    for p in floats:
        found.append(np.zeros(p.shape[:2], np.float32))
        cleans.append(np.empty_like(p))
        mattes.append(np.zeros(p.shape[:2], np.float32))
        core.network_pass(engine, p, None, 512, None, cleans[-1], found[-1], matte_out=mattes[-1])
    est = estimate_stamp(floats, hints=mattes, cleans=cleans)
    if not mode.startswith("base"):
        ours = set_estimate(est, floats, model)
        if mode.startswith("hint"):
            hints = [ours.placed(p.shape[:2], o)[0] for p, o in zip(floats, ours.offsets, strict=True)]
            if mode == "hintmix":
                hints = [0.5 * (a + b) for a, b in zip(hints, mattes, strict=True)]
            est = estimate_stamp(floats, hints=hints, cleans=cleans)
        else:
            est = ours if mode == "set" else _mixed_estimates(est, ours, 16, 0.5)
    est = filled_where_seen(confirmed_by(est, found), found, mattes, floats, cleans)
    if mode != "base-norefine":
        policy = shared.POLICY
        est = refine_stamp(est, floats, step=policy.refine_step if len(floats) < policy.sure_from else policy.refine_step_sure)
    for _ in range(0 if mode == "base-norefit" else shared.POLICY.refit_rounds):
        under = [shared._cleaned_under(est, p, o, engine, 512) for p, o in zip(floats, est.offsets, strict=True)]
        est = refit_to_cleans(est, floats, under, see_through=ops.UNBLEND_UP_TO)
    return est


def measure(argv) -> None:
    """PSNR inside the stamp at 2x, the estimate always used: WEIGHTS MODE [FOLDER K], the bench's 16
    procedural sets of 4, or its 8 sets of K of FOLDER's held-out pictures."""
    from desample.bench.shared import build_sets, shared_pictures
    from desample.core import restore
    from desample.engine.runtime import load_engine
    from desample.metrics import picture_metrics

    weights, mode = argv[0], argv[1] if len(argv) > 1 else "hintmix"
    folder, k = (argv[2], int(argv[3])) if len(argv) > 3 else (None, 4)
    torch.set_num_threads(1)
    engine, model = load_engine(None, "torch", 1), None if weights == "-" else load_set_model(weights)
    rows = []
    for i, previews in enumerate(build_sets(shared_pictures(folder, 64), k, 8 if folder else 16)):
        est = shared_estimate([p.stamped for p in previews], engine, model, mode)
        inside, errors = [], []
        for p, offset in zip(previews, est.offsets, strict=True):
            matte, color = est.placed(p.stamped.shape[:2], offset)
            errors.append(np.abs(matte - p.alpha)[p.mask].mean())
            inside.append(picture_metrics(restore(p.stamped, engine, stamp=(matte, color)).rgb, p.hr, p.mask, 2)["psnr_in"])
        rows.append((np.mean(inside), np.mean(errors)))
        print(f"set {i}: inside the stamp {rows[-1][0]:.2f}, matte error {rows[-1][1]:.3f}", flush=True)
    print(f"{mode}: inside the stamp {np.mean([r[0] for r in rows]):.3f}, matte error {np.mean([r[1] for r in rows]):.4f}")


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("train", "measure"):
        sys.exit(__doc__)
    (train if sys.argv[1] == "train" else measure)(sys.argv[2:])
