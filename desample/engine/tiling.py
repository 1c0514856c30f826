"""Tiled inference with linearly blended seams (after nunif's seam blending), in numpy.

Any picture size runs in bounded memory: the input is cut into overlapping tiles, each tile's
untrusted border (`border` LR px that saw padding) is dropped, and neighbouring tiles are blended
with linear ramps across their overlap, so no seam shows through a removed watermark. Tiles go
row by row and each finished band of rows is written straight into the output arrays (uint8 or
float32), so besides the output only one band of float32 rows is held.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def _round_up(n: int, m: int) -> int:
    return (n + m - 1) // m * m


def _layout(n: int, core: int, overlap: int, multiple: int) -> tuple[int, list[int]]:
    """(core length, start offsets): the fewest cores of at most about `core` covering [0, n), all
    of one length and evenly spread, neighbours overlapping by at least `overlap` (500 px with
    480 px cores: two cores of ~270, not a 480 and a mostly repeated second one). Starts are
    multiples of `multiple` (but the last), so tiles see the U-Net's strided grid as the whole
    picture would."""
    if n <= core:
        return n, [0]
    count = -(-(n - overlap) // (core - overlap))
    length = _round_up(-(-(n + (count - 1) * overlap) // count) + multiple, multiple)
    if length >= n:
        return n, [0]
    step = (n - length) / (count - 1)
    starts = [int(round(i * step / multiple)) * multiple for i in range(count - 1)]
    return length, [*starts, n - length]


def _widest_core(across: int, core: int, tile: int, border: int, multiple: int) -> int:
    """The core length along one side when the other side is `across` px: `core`, or longer when
    the picture is narrower than a tile that way, keeping the tile's area at most tile x tile."""
    if across > core:
        return core
    other = _round_up(across + 2 * border, multiple)
    return max(core, (tile * tile // other - 2 * border) // multiple * multiple)


def _ramp(length: int, overlap: int, ramp_start: bool, ramp_end: bool) -> np.ndarray:
    w = np.ones(length, np.float32)
    if overlap > 0:
        r = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        if ramp_start:
            w[:overlap] = np.minimum(w[:overlap], r)
        if ramp_end:
            w[length - overlap :] = np.minimum(w[length - overlap :], r[::-1])
    return w


def _mirror(idx: np.ndarray, n: int) -> np.ndarray:
    """Reflect indices outside [0, n) back inside (edge replication where the picture is too small)."""
    idx = np.where(idx < 0, -idx, idx)
    idx = np.where(idx >= n, 2 * (n - 1) - idx, idx)
    return np.clip(idx, 0, n - 1)


def _store(dst: np.ndarray, rows: slice, values: np.ndarray) -> None:
    """values (h, w, C) float32 -> dst rows, squeezed to dst's channels, rounded when dst is uint8.
    Works in place on `values` (no full-width temporaries)."""
    np.clip(values, 0.0, 1.0, out=values)
    if dst.dtype == np.uint8:
        values *= 255.0
        values += 0.5
    dst[rows] = values[..., 0] if dst.ndim == 2 else values  # the cast to uint8 truncates: rounded


def run_tiled(
    fn: Callable[[np.ndarray], Sequence[np.ndarray]],
    x: np.ndarray,
    scales: Sequence[int],
    outputs: Sequence[np.ndarray | None],
    multiple: int,
    border: int,
    tile: int = 512,
    overlap: int = 16,
    batch: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Apply fn to x (H, W, C), float32 in [0,1] or uint8, tile by tile, writing fn's k-th output into outputs[k].

    fn takes (B, C, h, w) float32 and returns NCHW arrays at scales[k] of its input; outputs[k] is
    (scales[k]*H, scales[k]*W, C_k) or (.., ..) for one channel, uint8 or float32, or None to drop.
    Values are clipped to [0, 1]. progress(tiles done, tiles in all) is called after each batch of tiles.
    """
    h, w = x.shape[:2]
    core = max(multiple, tile - 2 * border)  # LR pixels each tile contributes, at most
    overlap = min(overlap, core // 2)
    # A strip (a 1000-px-wide banner, a tall webtoon page) fits one tile across: let the tiles run
    # longer along it, at the same area, instead of paying the border on every short tile.
    core_h, core_w = (_widest_core(n, core, tile, border, multiple) for n in (w, h))
    core_h, ys = _layout(h, core_h, overlap, multiple)
    core_w, xs = _layout(w, core_w, overlap, multiple)
    tile_h = _round_up(core_h + 2 * border, multiple)
    tile_w = _round_up(core_w + 2 * border, multiple)
    cols = [_mirror(np.arange(x0 - border, x0 - border + tile_w), w) for x0 in xs]

    live = [k for k, o in enumerate(outputs) if o is not None]
    band: dict[int, np.ndarray] = {}  # k -> (core_h*s, w*s, C+1): weighted sums and the weight
    band_top = 0
    for row, y in enumerate(ys):
        rows = _mirror(np.arange(y - border, y - border + tile_h), h)
        wys = {s: _ramp(core_h * s, overlap * s, y > 0, y < ys[-1]) for s in set(scales)}
        strip = x[rows]  # (tile_h, w, C): one copy of the rows this tile row reads
        for start in range(0, len(xs), batch):
            chunk = range(start, min(start + batch, len(xs)))
            tiles = np.stack([strip[:, cols[i]].transpose(2, 0, 1) for i in chunk]).astype(np.float32, copy=False)
            if x.dtype == np.uint8:
                tiles *= 1.0 / 255.0
            results = fn(np.ascontiguousarray(tiles))
            if progress is not None:
                progress(row * len(xs) + chunk.stop, len(ys) * len(xs))
            for j, i in enumerate(chunk):
                x0 = xs[i]
                for k in live:
                    s = scales[k]
                    r = results[k][j, :, border * s : (border + core_h) * s, border * s : (border + core_w) * s]
                    if k not in band:
                        band[k] = np.zeros((core_h * s, w * s, r.shape[0] + 1), np.float32)
                    wt = np.outer(wys[s], _ramp(core_w * s, overlap * s, x0 > 0, x0 < xs[-1]))
                    dst = band[k][(y - band_top) * s : (y - band_top + core_h) * s, x0 * s : (x0 + core_w) * s]
                    dst[..., :-1] += r.transpose(1, 2, 0) * wt[..., None]
                    dst[..., -1] += wt
        # Rows above the next tile row are final: write them out and slide the band down.
        next_top = ys[row + 1] if row + 1 < len(ys) else y + core_h
        for k in live:
            s, acc = scales[k], band[k]
            done = (next_top - band_top) * s
            finished = acc[:done, :, :-1]
            finished /= np.maximum(acc[:done, :, -1:], 1e-8)
            _store(outputs[k], slice(band_top * s, next_top * s), finished)
            left = len(acc) - done
            acc[:left] = acc[done:]
            acc[left:] = 0
        band_top = next_top
