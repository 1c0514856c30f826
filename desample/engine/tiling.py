"""Tiled inference with linearly blended seams (after nunif's seam blending).

Any picture size runs in bounded memory: the input is cut into overlapping tiles, each tile's
untrusted border (`border` LR px that saw padding) is dropped, and neighbouring tiles are blended
with linear ramps across their overlap, so no seam shows through a removed watermark.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F


def _round_up(n: int, m: int) -> int:
    return (n + m - 1) // m * m


def _positions(n: int, core: int, overlap: int) -> list[int]:
    """Start offsets of cores of length `core` covering [0, n), neighbours overlapping by `overlap`."""
    if n <= core:
        return [0]
    step = core - overlap
    pos = list(range(0, n - core, step))
    pos.append(n - core)
    return pos


def _ramp(length: int, overlap: int, ramp_start: bool, ramp_end: bool, device) -> torch.Tensor:
    w = torch.ones(length, device=device)
    if overlap > 0:
        r = (torch.arange(overlap, device=device, dtype=torch.float32) + 0.5) / overlap
        if ramp_start:
            w[:overlap] = torch.minimum(w[:overlap], r)
        if ramp_end:
            w[length - overlap :] = torch.minimum(w[length - overlap :], r.flip(0))
    return w


def _pad(x: torch.Tensor, left: int, right: int, top: int, bottom: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    mode = "reflect" if max(left, right) < w and max(top, bottom) < h else "replicate"
    return F.pad(x, (left, right, top, bottom), mode=mode)


@torch.inference_mode()
def run_tiled(
    fn: Callable[[torch.Tensor], Sequence[torch.Tensor]],
    x: torch.Tensor,
    scales: Sequence[int],
    multiple: int,
    border: int,
    tile: int = 256,
    overlap: int = 16,
    batch: int = 4,
) -> list[torch.Tensor]:
    """Apply fn to x (1, C, H, W) tile by tile; fn returns tensors at the given scales of its input.

    Returns the outputs at full size: (1, C_i, scales[i]*H, scales[i]*W), float32.
    """
    _, _, h, w = x.shape
    core = max(multiple, tile - 2 * border)  # LR pixels each tile contributes
    overlap = min(overlap, core // 2)
    ys, xs = _positions(h, core, overlap), _positions(w, core, overlap)
    core_h, core_w = min(core, h), min(core, w)
    tile_h = _round_up(core_h + 2 * border, multiple)
    tile_w = _round_up(core_w + 2 * border, multiple)
    # The last core ends exactly at the picture's edge, so the same padding fits every tile.
    xp = _pad(x, border, tile_w - border - core_w, border, tile_h - border - core_h)

    outs: list[torch.Tensor | None] = [None] * len(scales)
    weights: list[torch.Tensor | None] = [None] * len(scales)
    jobs = [(y, x0) for y in ys for x0 in xs]
    for start in range(0, len(jobs), batch):
        chunk = jobs[start : start + batch]
        tiles = torch.cat([xp[:, :, y : y + tile_h, x0 : x0 + tile_w] for y, x0 in chunk])
        results = fn(tiles)
        for i, (y, x0) in enumerate(chunk):
            for k, s in enumerate(scales):
                r = results[k][i : i + 1].float()
                piece = r[:, :, border * s : (border + core_h) * s, border * s : (border + core_w) * s]
                if outs[k] is None:
                    outs[k] = torch.zeros(1, r.shape[1], h * s, w * s)
                    weights[k] = torch.zeros(1, 1, h * s, w * s)
                o = overlap * s
                wy = _ramp(core_h * s, o, y > 0, y < ys[-1], r.device)
                wx = _ramp(core_w * s, o, x0 > 0, x0 < xs[-1], r.device)
                wt = (wy[:, None] * wx[None, :])[None, None]
                outs[k][:, :, y * s : (y + core_h) * s, x0 * s : (x0 + core_w) * s] += piece * wt
                weights[k][:, :, y * s : (y + core_h) * s, x0 * s : (x0 + core_w) * s] += wt
    return [o / wt.clamp_min(1e-8) for o, wt in zip(outs, weights, strict=True)]
