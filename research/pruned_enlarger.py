"""Can a smaller upconv_7, cut from waifu2x's weights and fine-tuned on our pictures, enlarge as well?

The joint network's enlargement must stay cheap (desample >= 2x waifu2x's speed), and upconv_7
costs 552 k multiply-adds per LR pixel, 3.5x the whole desample net. This experiment keeps
upconv_7's shape with fewer channels, starts each kept channel from the pretrained one (filters with
the largest L1 norm), and fine-tunes on clean previews of the training split (lossless and JPEG,
the same downscaling as training's), the truth as target. It reports PSNR-Y on the bench's clean
dev cases (`desample bench --images ../shared/data/anime --limit 24`'s "@clean" inputs) for the
student, the full upconv_7 and bicubic, before and after. Needs the pretrained extra.

    python research/pruned_enlarger.py --widths 16 32 48 64 64 64 --steps 3000 --out ~/.cache/desample/pruned
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from desample.bench.run import build_cases
from desample.data.pairs import downscale, random_jpeg
from desample.data.sources import list_pictures, split_holdout
from desample.metrics import psnr_y
from desample.model.pretrained import load

PAD = 7  # upconv_7's six valid 3x3 convolutions and its deconvolution eat 7 LR pixels a side


class Upconv7(nn.Module):
    """x (N, 3, h, w) in [0,1] -> (N, 3, 2h, 2w): six valid 3x3 convs, LeakyReLU 0.1, a 4x4 stride-2 deconvolution."""

    def __init__(self, widths=(16, 32, 64, 128, 128, 256)):
        super().__init__()
        chans = (3, *widths)
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3) for a, b in zip(chans[:-1], chans[1:], strict=True))
        self.up = nn.ConvTranspose2d(widths[-1], 3, 4, 2, 3)

    def forward(self, x):
        x = F.pad(x, (PAD, PAD, PAD, PAD), mode="replicate")
        for c in self.convs:
            x = F.leaky_relu(c(x), 0.1)
        return self.up(x)


def pruned_from_pretrained(widths: tuple[int, ...], name: str = "upconv7") -> Upconv7:
    """The student with each layer's strongest filters (L1 norm) of the pretrained upconv_7."""
    teacher = load(name).net
    convs = [m for m in teacher.convs.values() if isinstance(m, nn.Conv2d)]
    deconv = next(m for m in teacher.convs.values() if isinstance(m, nn.ConvTranspose2d))
    student = Upconv7(widths)
    keep_in = torch.arange(3)
    with torch.no_grad():
        for src, dst, width in zip(convs, student.convs, widths, strict=True):
            keep_out = src.weight.abs().sum(dim=(1, 2, 3)).argsort(descending=True)[:width].sort().values
            dst.weight.copy_(src.weight[keep_out][:, keep_in])
            dst.bias.copy_(src.bias[keep_out])
            keep_in = keep_out
        student.up.weight.copy_(deconv.weight[keep_in])
        student.up.bias.copy_(deconv.bias)
    return student


def _pictures(folders: list[str], long_side: int = 1024) -> list[Image.Image]:
    files = [f for d in folders for f in split_holdout(list_pictures(d))[0]]
    out = []
    for f in files:
        try:
            im = Image.open(f)
            im = im.convert("RGBA").convert("RGB") if im.mode in ("RGBA", "LA", "P") else im.convert("RGB")
        except OSError:
            continue
        im.thumbnail((long_side, long_side), Image.BOX)
        out.append(im)
    return out


def _batch(pictures, rng, n: int, lr_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    hr_size = 2 * lr_size
    while len(xs) < n:
        im = pictures[int(rng.integers(len(pictures)))]
        if min(im.size) < hr_size:
            continue
        # a random scale first, as training's previews are shrunk from pictures of every size: a
        # region of hr_size / f pixels shrunk to hr_size
        f = rng.uniform(hr_size / min(im.size), 1.0) if rng.random() < 0.5 else 1.0
        side = int(hr_size / f)
        x0, y0 = int(rng.integers(im.width - side + 1)), int(rng.integers(im.height - side + 1))
        hr = im.crop((x0, y0, x0 + side, y0 + side))
        hr = hr.resize((hr_size, hr_size), Image.BOX) if side != hr_size else hr
        lr = np.asarray(downscale(hr, (lr_size, lr_size), rng), np.float32) / 255
        lr = random_jpeg(lr, rng) if rng.random() < 0.5 else lr
        xs.append(lr.transpose(2, 0, 1))
        ys.append((np.asarray(hr, np.float32) / 255).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def evaluate(model: nn.Module, cases) -> float:
    model.eval()
    scores = []
    with torch.inference_mode():
        for c in cases:
            y = model(torch.from_numpy(np.ascontiguousarray(c.clean_lr.transpose(2, 0, 1)))[None])[0]
            out = np.round(y.clamp(0, 1).numpy().transpose(1, 2, 0) * 255) / 255
            scores.append(psnr_y(out, c.hr))
    model.train()
    return float(np.mean(scores))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--widths", type=int, nargs=6, default=[16, 32, 48, 64, 64, 64])
    ap.add_argument("--data", nargs="+", default=["../shared/data/anime", "../shared/data/anime_more"])
    ap.add_argument("--dev", default="../shared/data/anime")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    cases = build_cases(args.dev, 24, 1)
    widths = tuple(args.widths)
    ckpt = args.out / "student.pt"
    student = pruned_from_pretrained(widths)
    start = 0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True)
        student.load_state_dict(state["model"])
        start = state["step"]
    log = open(args.out / "log.jsonl", "a")
    if start == 0:
        full = evaluate(load("upconv7"), cases)
        bic = float(np.mean([psnr_y(np.clip(np.asarray(Image.fromarray((c.clean_lr * 255 + 0.5).astype(np.uint8)).resize(
            (c.hr.shape[1], c.hr.shape[0]), Image.BICUBIC), np.float32) / 255, 0, 1), c.hr) for c in cases]))
        first = {"step": 0, "widths": widths, "student": evaluate(student, cases), "upconv7": full, "bicubic": bic}
        print(json.dumps(first), flush=True)
        log.write(json.dumps(first) + "\n")
    pictures = _pictures(args.data)
    rng = np.random.default_rng(args.seed + start)
    opt = torch.optim.Adam(student.parameters(), lr=args.lr)
    t0 = time.time()
    for step in range(start + 1, args.steps + 1):
        x, y = _batch(pictures, rng, args.batch, args.lr_size)
        out = student(x)
        b = 2 * PAD  # the output's edge saw replicated padding: not what the network is for
        loss = (out[..., b:-b, b:-b] - y[..., b:-b, b:-b]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % args.eval_every == 0 or step == args.steps:
            row = {"step": step, "loss": round(loss.item(), 5), "student": evaluate(student, cases),
                   "s_per_step": round((time.time() - t0) / (step - start), 3)}
            print(json.dumps(row), flush=True)
            log.write(json.dumps(row) + "\n")
            log.flush()
            torch.save({"model": student.state_dict(), "step": step, "widths": widths}, ckpt)


if __name__ == "__main__":
    main()
