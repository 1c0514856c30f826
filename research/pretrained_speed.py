"""How fast would a pretrained enlargement run inside desample? ONNX Runtime timings, same run.

Exports the PyTorch ports of waifu2x upconv_7 and cunet (desample.model.pretrained), and channel-
pruned upconv_7 variants (the smaller students a distillation would start from), to ONNX, and times
them against the shipped model on a 233x330 picture (medians of --repeats runs, --threads threads).
Also reports multiply-adds per LR pixel. Needs the pretrained extra.

    cd research && python pretrained_speed.py --threads 2 --repeats 7
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from pruned_enlarger import PAD, Upconv7  # research/: run from this folder or with it on the path
from torch import nn

from desample.model.pretrained import load
from desample.paths import DEFAULT_ONNX


def _macs(m: Upconv7) -> int:
    """Multiply-adds per LR pixel (the deconvolution's 4x4 taps spread over 4 output pixels)."""
    assert PAD == 7
    return sum(9 * c.in_channels * c.out_channels for c in m.convs) + 16 * m.up.in_channels * 3


def _session(path: str, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.enable_cpu_mem_arena = False
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def _time(sess: ort.InferenceSession, feeds: dict, repeats: int) -> float:
    sess.run(None, feeds)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _export(model: nn.Module, x: torch.Tensor, path: Path) -> str:
    torch.onnx.export(model.eval(), (x,), str(path), input_names=["x"], output_names=["y"], opset_version=17,
                      dynamic_axes={"x": {2: "h", 3: "w"}, "y": {2: "H", 3: "W"}}, dynamo=False)
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    h, w = 330, 233
    x = torch.rand(1, 3, h, w)
    rows = []
    shipped = _session(str(DEFAULT_ONNX), args.threads)
    # the shipped net takes sides that are multiples of 8, as its tiling pads them
    hp, wp = -(-h // 8) * 8, -(-w // 8) * 8
    feeds = {"x": np.zeros((1, 3, hp, wp), np.float32), "guide": np.zeros((1, 2, hp, wp), np.float32)}
    feeds["x"][..., :h, :w] = x.numpy()
    base = _time(shipped, feeds, args.repeats)
    rows.append(("desample (shipped, whole net)", base, None))
    with tempfile.TemporaryDirectory() as tmp:
        candidates = {
            "waifu2x upconv_7 (port)": (load("upconv7"), _macs(Upconv7())),
            "waifu2x cunet (port)": (load("cunet"), None),
        }
        for widths in ((16, 32, 64, 96, 96, 128), (16, 32, 48, 64, 64, 64), (16, 32, 32, 48, 48, 48)):
            m = Upconv7(widths)
            candidates[f"upconv_7 shape, widths {widths}"] = (m, _macs(m))
        for name, (model, macs) in candidates.items():
            sess = _session(_export(model, x, Path(tmp) / "m.onnx"), args.threads)
            rows.append((name, _time(sess, {"x": x.numpy()}, args.repeats), macs))
    print(f"233x330 -> 2x, ONNX Runtime, {args.threads} thread(s), median of {args.repeats}\n")
    print("| model | s | vs desample | multiply-adds per LR pixel |\n|---|---|---|---|")
    for name, t, macs in rows:
        print(f"| {name} | {t:.3f} | {t / base:.2f}x | {'' if macs is None else f'{macs / 1000:.0f} k'} |")


if __name__ == "__main__":
    main()
