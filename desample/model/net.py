"""The joint watermark-removal + super-resolution network.

Design (why): a CPU has little compute, so every layer runs at the low resolution (LR).
- A small U-Net at LR (3 downsamplings, receptive field ~100 LR px) sees whole strokes of a big
  SAMPLE word: it predicts the stamp mask (auxiliary, supervised head) and a clean LR picture.
- The clean LR picture follows how stamps are made, J = a*W + (1-a)*I: the net predicts the matte
  a and colour W (both supervised) and inverts the blend, I = (J - a*W) / (1 - a), where the stamp
  is see-through; where it is nearly opaque (a > 0.5 .. 0.8) a painted "fill" takes over. A last
  residual cleans JPEG noise. Learning a matte is much easier than learning the inversion.
- The enlargement has its own path: features of the U-Net and of the first layer go through a
  residual block and a pixel shuffle to a 2x residual added to the bicubic enlargement of the
  clean LR estimate. The last layers start at zero, so an untrained model is exactly "remove
  nothing + bicubic" and training can only improve on that.
- Two optional guide channels: a known matte or mask of the stamp, and a flag saying a guide is
  given. Trained with the guide given part of the time, one model serves blind and guided use.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class NetConfig:
    scale: int = 2
    widths: tuple[int, ...] = (32, 48, 64, 96)  # channels at 1, 1/2, 1/4, 1/8 of LR
    blocks: tuple[int, ...] = (1, 1, 2, 2)  # residual blocks per encoder level
    sr_width: int = 32
    sr_blocks: int = 1
    guide_channels: int = 2  # (matte or mask, "guide given" flag)
    opaque_from: float = 0.5  # matte where the painted fill starts to replace the inverse blend
    opaque_to: float = 0.8  # ... and fully replaces it (the inversion amplifies noise by 1/(1-a))

    def __post_init__(self):
        if len(self.widths) != len(self.blocks):
            raise ValueError(f"the net needs as many blocks as widths, one per U-Net level: {self.widths} vs {self.blocks}")

    @property
    def multiple(self) -> int:
        """Input sides must be a multiple of this (the U-Net halves them len(widths)-1 times)."""
        return 2 ** (len(self.widths) - 1)

    @property
    def border(self) -> int:
        """LR pixels at a tile edge that see padding instead of picture: discard them when tiling
        (16 for 4 levels; a deeper U-Net sees further)."""
        return 2 ** len(self.widths)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> NetConfig:
        known = {f for f in cls.__dataclass_fields__}
        d = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in known}
        return cls(**d)


def _cubic(x: float, a: float = -0.75) -> float:
    """PyTorch's bicubic kernel (a = -0.75)."""
    x = abs(x)
    if x <= 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2:
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return 0.0


class Bicubic(nn.Module):
    """F.interpolate(mode="bicubic", align_corners=False) at an integer scale, as a fixed depthwise
    conv + pixel shuffle: the same numbers, but ONNX Runtime runs it ~20x faster than its Resize."""

    def __init__(self, scale: int, channels: int = 3):
        super().__init__()
        phases = []  # per output phase p: {input offset: weight}
        for p in range(scale):
            src = (p + 0.5) / scale - 0.5
            base = math.floor(src)
            t = src - base
            phases.append({base + k: _cubic(t - k) for k in (-1, 0, 1, 2)})
        lo = min(min(ph) for ph in phases)
        hi = max(max(ph) for ph in phases)
        size = hi - lo + 1
        taps = torch.zeros(scale, size, dtype=torch.float64)
        for p, ph in enumerate(phases):
            for off, wt in ph.items():
                taps[p, off - lo] = wt
        kernel = torch.einsum("ik,jl->ijkl", taps, taps).reshape(scale * scale, 1, size, size)
        self.register_buffer("kernel", kernel.float().repeat(channels, 1, 1, 1), persistent=False)
        self.pad = (-lo, hi, -lo, hi)
        self.scale, self.channels = scale, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Replicate padding = PyTorch's clamping of source indices at the picture's edge.
        y = F.conv2d(F.pad(x, self.pad, mode="replicate"), self.kernel, groups=self.channels)
        return F.pixel_shuffle(y, self.scale)


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.act = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, x):
        return x + self.conv2(self.act(self.conv1(x)))


@dataclass
class NetOutput:
    sr: torch.Tensor  # (B, 3, sH, sW) clean picture, enlarged; not clamped
    lr: torch.Tensor  # (B, 3, H, W) clean picture at input size
    mask_logits: torch.Tensor  # (B, 1, H, W) stamp mask, before the sigmoid
    matte: torch.Tensor | None = None  # (B, 1, H, W) the stamp's estimated alpha in [0,1]
    color: torch.Tensor | None = None  # (B, 3, H, W) the stamp's estimated colour in [0,1]

    def first(self, n: int) -> NetOutput:
        """The outputs of the batch's first n pictures."""
        return NetOutput(*(None if t is None else t[:n] for t in (self.sr, self.lr, self.mask_logits, self.matte, self.color)))


class DesampleNet(nn.Module):
    def __init__(self, config: NetConfig | None = None):
        super().__init__()
        self.config = config = config or NetConfig()
        w = config.widths
        act = nn.LeakyReLU(0.1, inplace=True)
        self.head = nn.Conv2d(3 + config.guide_channels, w[0], 3, padding=1)
        self.enc = nn.ModuleList()
        self.down = nn.ModuleList()
        for i, (ch, n) in enumerate(zip(w, config.blocks, strict=True)):
            if i > 0:
                self.down.append(nn.Sequential(nn.Conv2d(w[i - 1], ch, 3, stride=2, padding=1), act))
            self.enc.append(nn.Sequential(*[ResBlock(ch) for _ in range(n)]))
        # Decoder: pixel-shuffle up, add the skip, one residual block per level.
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in range(len(w) - 1, 0, -1):
            self.up.append(nn.Sequential(nn.Conv2d(w[i], w[i - 1] * 4, 1), nn.PixelShuffle(2)))
            self.dec.append(ResBlock(w[i - 1]))
        self.mask_head = nn.Conv2d(w[0], 1, 3, padding=1)
        # matte logit (1), colour logits (3), fill residual (3), refinement residual (3)
        self.removal_head = nn.Conv2d(w[0], 10, 3, padding=1)
        s = config.scale
        self.sr_in = nn.Sequential(nn.Conv2d(2 * w[0], config.sr_width, 3, padding=1), act)
        self.sr_body = nn.Sequential(*[ResBlock(config.sr_width) for _ in range(config.sr_blocks)])
        self.sr_out = nn.Sequential(nn.Conv2d(config.sr_width, 3 * s * s, 3, padding=1), nn.PixelShuffle(s))
        self.bicubic = Bicubic(s)
        # Start as "remove nothing, bicubic enlargement": the residual heads output zero.
        for conv in (self.removal_head, self.sr_out[0]):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        with torch.no_grad():
            # Matte ~0.02: the untrained net almost leaves the picture as it is. Not lower: a saturated
            # sigmoid barely learns (a -8 start had moved by 0.08 after 750 steps).
            self.removal_head.bias[0] = -4.0

    def forward(self, x: torch.Tensor, guide: torch.Tensor | None = None) -> NetOutput:
        """x: (B, 3, H, W) in [0,1], H and W multiples of config.multiple; guide: (B, 2, H, W) or None."""
        if guide is None:
            guide = x.new_zeros(x.shape[0], self.config.guide_channels, x.shape[2], x.shape[3])
        f0 = self.head(torch.cat([x, guide], dim=1))
        skips = []
        h = f0
        for i, block in enumerate(self.enc):
            if i > 0:
                h = self.down[i - 1](h)
            h = block(h)
            skips.append(h)
        for j, (up, dec) in enumerate(zip(self.up, self.dec, strict=True)):
            h = dec(up(h) + skips[-2 - j])
        feat = self.sr_body(self.sr_in(torch.cat([h, f0], dim=1)))
        # Under bf16 autocast (training on a CPU with native bf16) only the trunk above is bf16: the
        # heads, the inverse blend and the enlargement stay fp32 (a bf16 output is off by up to 1/256).
        with torch.autocast(x.device.type, enabled=False):
            return self._heads(x, h.float(), feat.float())

    def _heads(self, x: torch.Tensor, h: torch.Tensor, feat: torch.Tensor) -> NetOutput:
        mask_logits = self.mask_head(h)
        r = self.removal_head(h)
        matte = torch.sigmoid(r[:, :1])
        color = torch.sigmoid(r[:, 1:4])
        cfg = self.config
        a = matte.clamp(max=cfg.opaque_to)
        see_through = (x - a * color) / (1.0 - a)  # the exact inverse of the blend
        fill = x + r[:, 4:7]
        g = ((matte - cfg.opaque_from) / (cfg.opaque_to - cfg.opaque_from)).clamp(0, 1)
        lr = (1 - g) * see_through + g * fill + r[:, 7:10]  # (B, 3, H, W)
        base = self.bicubic(lr)
        sr = base + self.sr_out(feat)  # (B, 3, sH, sW)
        return NetOutput(sr=sr, lr=lr, mask_logits=mask_logits, matte=matte, color=color)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def bicubic(rgb: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic enlargement (PyTorch's kernel, as the model's own base), the baseline to beat."""
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].float()
    y = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)
    return y[0].permute(1, 2, 0).numpy()
