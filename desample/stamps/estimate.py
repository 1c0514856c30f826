"""Estimate one stamp from several pictures that share it (after Dekel et al., CVPR 2017).

Every picture of a set is J_k = a*W + (1-a)*I_k with the same matte a and colour W. So:
1. Where: the stamp is the only structure all pictures share. Pictures of different sizes are
   aligned by cross-correlating edge maps (then re-aligned on the stamp's own edges); same-size
   pictures are taken as aligned. The median of the aligned gradients, kept where nearly every
   picture agrees with it, marks the stamp's edges; the letters' insides are the holes they enclose.
2. How opaque: under the stamp the pictures differ only by (1-a) times their own differences,
   which neighbouring pixels share wherever the pictures are smooth. The energy ratio of
   neighbours gives the step of log(1-a) across each edge; a weighted least-squares integration
   (a sparse direct solve) gives the field, and a guided filter on the Poisson reconstruction of
   the median gradients smooths what noise is left. Where the pictures do not differ at all the
   stamp is opaque.
3. Which colour: the mean over the set is a*W + (1-a)*mean(I), so W follows from a and mean(I)
   under the stamp; that mean is integrated from the steps that leave the median picture flat.

shared.estimate_shared adds the network's view: its detections confirm where the stamp is (and
complete what the edges missed), its mattes are a second opinion, and the estimate is refitted to
what it removes from each picture with the estimate inverted (refit_to_cleans).
Then I_k = (J_k - a*W) / (1 - a) wherever the stamp is see-through; the opaque rest is filled from
around it and refined by the network (core.restore).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..ops import dilate, fill_from, forward_differences, grid_laplacian, guided_filter, poisson_inside, poisson_solve, solve_spd

OPAQUE = 0.95  # the matte is capped here: at a = 1 nothing of the picture shows through
OPAQUE_SPREAD = 0.1  # pictures differing by under this share of their usual spread: the stamp is opaque there
# Estimated mattes below MIN_MATTE are set to 0: there they are mostly noise, and unblending noise hurts
# the picture around the stamp. Measured (8 real sets of 8, inverse blend at LR, vs. 0.05): 0.03 keeps
# more of faint stamps and glows, +0.20 dB inside the stamp, whole +0.11; sets of 4 unchanged (+0.02,
# +0.00); at 2x, sets of 8: +0.10 dB inside, +0.03 whole. 0.02: +0.27 with 8 pictures but -0.08 with 4.
MIN_MATTE = 0.03
# With hints and reach_hints, the stamp's region also takes in where the hints' mean matte is this
# much or more, and HINT_REACH px around it, where that joins the letters' region. Measured (`python
# research/measure_shared_gain.py - - K 16 preview`, see-through glowing words): inside the stamp
# +0.25 dB with 4 pictures, +0.36 with 8; the other procedural and real sets +0.00 to +0.08. A mean
# of 0.05 and 12 px: glowing words +0.30, words -0.03. Only for a set that shares a stamp
# (shared.estimate_shared): for pictures each under their own word it makes their union a stamp.
HINT_REGION = 0.1
HINT_REACH = 6
# refit_to_cleans: how strongly each pixel's refit is held to the estimate it starts from. Measured
# (16 procedural sets of 4, two rounds; PSNR inside the stamp at 2x): 1.0 +0.25 dB, 0.3 +0.31; five
# rounds at 0.3 +0.32, with some sets falling back (the colour gets noisy).
REFIT_RIDGE = 0.3
CONFIRMED_FROM = 0.1  # the set's mean detection probability from which a stamp is confirmed...
CONFIRMED_BY = 2  # ...when at least this many pictures see it there (one picture's mistake does not count)
CONFIRM_WIDEN = 3  # px around what detection confirms (its edges and glow are faint)
UNKNOWN_KIND = 0.25  # detection confirms less of the matte's mass than this: it does not know the stamp
# The stamp's edges: where the pictures agree on a gradient at least this strong (and 4x their usual
# agreement, and a fifth of the strongest). A floor of 0.02 cut the edges of faint glowing words
# (peak opacity ~0.4: their edges agree at ~0.012, content at ~0.003), and their matte was solved
# over a region missing most of the word. Measured inside the stamp at 2x, 0.02 -> 0.005 (`python
# research/measure_shared_gain.py - FOLDER K N [preview]`): glowing words of 4 24.43 -> 24.48, of 8
# 24.80 -> 24.90; words of 4 23.45 -> 23.44, of 8 23.51 -> 23.51; real sets of 4 21.32 -> 21.31, of 8
# 21.96 -> 21.98.
EDGE_FLOOR = 0.005
MOVED_MARGIN = 1.2  # same-size pictures: a moving stamp is assumed only when its edges agree this much better
MISSED_SEEN = 0.5  # every picture's detector at least this sure of a stamp the estimate left out...
MISSED_MATTE = 0.5  # ...and the network's matte there, averaged over the set: it is made opaque (filled_where_seen)


@dataclass
class StampEstimate:
    matte: np.ndarray  # (h, w) in [0, 1]
    color: np.ndarray  # (h, w, 3) in [0, 1]
    offsets: list[tuple[int, int]] = field(default_factory=list)  # (y, x) of the stamp's top-left in each picture
    # How badly the stamp explains the pictures it came from, against the network's own removal
    # (shared._misfit; None when not measured): 0 explains them, 1 is unrelated (shared.POLICY.misfit_limit: 0.75).
    misfit: float | None = None
    misfit_each: list[float | None] = field(default_factory=list)  # per picture (None: no matte over it)
    # The share of what the network, run blind on each picture, finds of a stamp that the estimate
    # leaves out (shared._uncovered): per picture (None where it finds too little), and their median
    # (None when not measured).
    uncovered: float | None = None
    uncovered_each: list[float | None] = field(default_factory=list)
    # After the inverse blend, whether the network should look for what is left (estimates from a
    # few pictures, whose errors it cleans) or be told the stamp is known (read off many pictures:
    # looking, it marked the pictures' own text too; shared.estimate_shared).
    look_after: bool = True
    # Pictures (indices) that cannot carry the stamp: they are darker (or lighter) under it than
    # any picture blended with it can be (cannot_carry; set for many-picture estimates).
    foreign: list[int] = field(default_factory=list)

    def placed(self, shape: tuple[int, int], offset: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """(matte (H, W), colour (H, W, 3)) of a picture of `shape` with the stamp at `offset` (may hang over)."""
        h, w = shape
        matte = np.zeros((h, w), np.float32)
        color = np.zeros((h, w, 3), np.float32)
        oy, ox = offset
        sh, sw = self.matte.shape
        y0, x0 = max(oy, 0), max(ox, 0)
        y1, x1 = min(oy + sh, h), min(ox + sw, w)
        if y1 > y0 and x1 > x0:
            matte[y0:y1, x0:x1] = self.matte[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
            color[y0:y1, x0:x1] = self.color[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
        return matte, color


def confirmed_by(est: StampEstimate, found: list[np.ndarray]) -> StampEstimate:
    """est with its matte kept only near where detection, averaged over the set, finds a stamp.

    found: per picture (same order as est.offsets), a stamp probability map (H_k, W_k) in [0,1],
    e.g. the network's blind detection. Averaged in the stamp's own frame, content that one picture's
    detector mistakes for a stamp does not count, and a faint stamp that each detector half sees does
    (measured, 4 real sets of 4: matte spill outside the stamp 0.029 -> 0.009, the picture outside
    +2.7 dB after the inverse blend, inside -0.07 dB; sets of 8: inside -0.07, outside +0.5). Where
    detection confirms almost none of the matte, the stamp is of a kind it does not know: est as is.
    A mean of 0.1 seen by 2+ pictures, not a mean of 0.2: 8 real sets of 8, shipped weights, 2x,
    inside the stamp +0.24 dB (a faint word kept whole: +1.5), whole picture +0.08, outside -0.02;
    sets of 4, inverse blend at LR: the same (-0.05 dB inside, whole +0.00).
    """
    probs = _in_frame(found, est.offsets, est.matte.shape)  # NaN where a picture does not reach
    count = np.isfinite(probs).sum(0)
    total = np.nansum(probs, axis=0, dtype=np.float64)
    seen = (np.nan_to_num(probs) >= CONFIRMED_FROM).sum(0)
    confirmed = (total / np.maximum(count, 1) >= CONFIRMED_FROM) & (seen >= min(CONFIRMED_BY, len(found)))
    near = dilate(confirmed, CONFIRM_WIDEN)
    kept = np.where(near, est.matte, 0).astype(np.float32)
    if kept.sum() < UNKNOWN_KIND * est.matte.sum():
        return est
    return StampEstimate(matte=kept, color=np.where(near[..., None], est.color, 0).astype(np.float32), offsets=list(est.offsets),
                         misfit=est.misfit)


def filled_where_seen(est: StampEstimate, found: list[np.ndarray], mattes: list[np.ndarray],
                      pictures: list[np.ndarray] | None = None, cleans: list[np.ndarray] | None = None) -> StampEstimate:
    """est completed where its own support missed a stamp that every picture's detector sees
    (found >= MISSED_SEEN), in est's frame grown to wherever the pictures reach. found, mattes,
    pictures, cleans: per picture (H_k, W_k[, 3]), in est.offsets' order.

    Where the network's matte, averaged over the set, is at least MISSED_MATTE the stamp is made
    opaque (for the network to paint). Measured: a dark-grey word (a = 0.88) whose estimate left out
    270 of its 2,207 opaque pixels (the pictures agreed on too few of its edges there) while every
    detector saw them (0.95): the network, told the stamp was only where the estimate put it, left
    those letters: -5.03 dB inside the stamp against blind removal, -4.10 with this.
    Given the pictures and the network's blind removal of each (cleans), the fainter rest takes
    the network's mean matte, and the colour that explains the pictures with it: J = a*W + (1-a)*C.
    Measured: a see-through Japanese word (a = 0.56) of which 8 procedural pictures' edges agreed on
    two letters only, while every detector saw all four (0.96; `desample bench --shared 8 --limit 16`,
    set 14): matte error in the stamp 0.30 -> 0.19, PSNR in it 19.18 -> 21.39 dB (blind 20.77); the
    16 sets +0.16 dB inside the stamp, the 16 sets of 4 +0.06, 8 real sets of 4 the same.
    """
    # The frame grown to all that the pictures cover (what est missed may lie outside its box).
    # Picture k covers the frame's rows -oy_k .. H_k - oy_k; frame row r becomes canvas row r - top.
    h, w = est.matte.shape
    top = min(0, -max(oy for oy, _ in est.offsets))
    left = min(0, -max(ox for _, ox in est.offsets))
    bottom = max(f.shape[0] - oy for f, (oy, _) in zip(found, est.offsets, strict=True))
    right = max(f.shape[1] - ox for f, (_, ox) in zip(found, est.offsets, strict=True))
    shape = (max(bottom, h) - top, max(right, w) - left)
    offsets = [(oy + top, ox + left) for oy, ox in est.offsets]
    matte = np.zeros(shape, np.float32)
    color = np.zeros((*shape, 3), np.float32)
    matte[-top : -top + h, -left : -left + w] = est.matte
    color[-top : -top + h, -left : -left + w] = est.color
    seen = _in_frame(found, offsets, shape)
    network = _in_frame(mattes, offsets, shape)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # pixels no picture reaches: NaN
        everyone = np.nan_to_num(np.nanmin(seen, axis=0)) >= MISSED_SEEN
        mean = np.nan_to_num(np.nanmean(network, axis=0))
    missed = (matte == 0) & everyone & (mean >= (MISSED_MATTE if cleans is None else MIN_MATTE))
    if not missed.any():
        return est
    opaque = missed & (mean >= MISSED_MATTE)
    faint = missed & ~opaque
    matte[opaque] = OPAQUE
    if faint.any():
        a = mean[..., None]
        stamped, under = _in_frame(pictures, offsets, shape), _in_frame(cleans, offsets, shape)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            explained = np.nan_to_num(np.clip(np.nanmean(stamped - (1 - a) * under, axis=0) / np.maximum(a, 1e-3), 0, 1))
        matte[faint] = mean[faint]
        color[faint] = explained[faint]
    # Cropped again to est's own box and what was added, with a ring around it: the frame only grows.
    keep = dilate(missed, 8)
    keep[-top : -top + h, -left : -left + w] = True
    ys, xs = np.nonzero(keep)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return StampEstimate(matte=matte[y0:y1, x0:x1].copy(), color=color[y0:y1, x0:x1].copy(),
                         offsets=[(oy + int(y0), ox + int(x0)) for oy, ox in offsets], misfit=est.misfit)


def _in_frame(maps: list[np.ndarray], offsets: list[tuple[int, int]], shape: tuple[int, int]) -> np.ndarray:
    """Per-picture maps (H_k, W_k[, C]) in the stamp's frame of `shape`, (K, h, w[, C]), NaN where a picture does not reach."""
    h, w = shape
    out = np.full((len(maps), h, w, *maps[0].shape[2:]), np.nan, np.float32)
    for k, (m, (oy, ox)) in enumerate(zip(maps, offsets, strict=True)):
        y0, x0 = max(oy, 0), max(ox, 0)
        y1, x1 = min(oy + h, m.shape[0]), min(ox + w, m.shape[1])
        if y1 > y0 and x1 > x0:
            out[k, y0 - oy : y1 - oy, x0 - ox : x1 - ox] = m[y0:y1, x0:x1]
    return out


def refine_stamp(est: StampEstimate, pictures: list[np.ndarray], iterations: int = 100, step: float = 0.003,
                 flatness: float = 0.02, matte_flatness: float = 0.01, keep_from: float = 0.7) -> StampEstimate:
    """est with its matte and colour refined jointly with the pictures under the stamp, as Dekel et
    al.'s multi-image matting does: J_k = a*W + (1-a)*I_k for every picture, each I_k with sparse
    gradients (anime is flat almost everywhere: a stamp's edges left in I_k, or the pictures' own
    edges amplified by too strong a matte, cost), and the matte smooth. Projected Adam steps from
    est (I_k starts as the inverse blend); about a second for 4 previews, ~15 s per megapixel of
    the stamp's box per picture (4 pictures of 1000x1400 under one big stamp: 60 s -> 110 s for
    `estimate_shared`, memory ~10 float32 copies of the box per picture, within its peak).

    Only what starts see-through moves (0 < a < keep_from): where nothing shows through, the
    pictures agree with any matte, and the network paints there anyway. Measured on sets of 4
    (anime sets drawn with seeds 4321, 999, 777, procedural 4321 and 999; 32 sets; shipped
    weights, 2x): inside the stamp +0.42 dB after the inverse blend (25 sets gain, a faint word
    +2.5; 5 lose 0.01-1.2); on sets of 8, whose estimate is closer to start with, -0.28 (8 anime
    sets), but in a third of the step +0.16 (24 sets; shared.POLICY.refine_step_sure).
    `python research/measure_stamp_refinement.py`.
    Tried and left out, on the first 12 of those sets: the colour kept smooth too (total variation
    on W, weight 0.02 or 0.1): -0.3 to -1.2 dB; I_k started from the network's blind removal
    instead of the inverse blend: -0.13 (anime) and -0.68 (procedural).
    """
    h, w = est.matte.shape
    moving = (est.matte > 0) & (est.matte < keep_from)
    if not moving.any():
        return est
    stamped = _in_frame(pictures, est.offsets, (h, w))
    seen = np.isfinite(stamped[..., :1]).astype(np.float32)  # where each picture reaches the stamp's frame
    stamped = np.nan_to_num(stamped)
    matte = est.matte[..., None].astype(np.float32).copy()
    color = est.color.astype(np.float32).copy()
    opaque = np.minimum(matte, OPAQUE)
    under = np.clip((stamped - opaque * color) / (1 - opaque), 0, 1)  # I_k
    free = moving[..., None].astype(np.float32)
    params = [matte, color, under]
    adam = _Adam(params, step)
    for _ in range(iterations):
        residual = (stamped - matte * color - (1 - matte) * under) * seen
        grad_under = -2 * (1 - matte) * residual + flatness * _tv_gradient(under) * seen
        grad_matte = (-2 * residual * (color - under)).sum((0, 3))[..., None] + matte_flatness * _tv_gradient(matte)
        grad_color = (-2 * residual * matte).sum(0)
        adam.step([grad_matte * free, grad_color * free, grad_under])
        np.clip(matte, 0, OPAQUE, out=matte)
        np.clip(color, 0, 1, out=color)
        np.clip(under, 0, 1, out=under)
    refined = np.where(moving, matte[..., 0], est.matte).astype(np.float32)
    return StampEstimate(matte=refined, color=np.where(moving[..., None], color, est.color).astype(np.float32),
                         offsets=list(est.offsets), misfit=est.misfit)


def refit_to_cleans(est: StampEstimate, pictures: list[np.ndarray], cleans: list[np.ndarray], ridge: float = REFIT_RIDGE,
                    grow: int = 3, see_through: float = 0.7, band: int = 128) -> StampEstimate:
    """est refitted, pixel by pixel, to J_k = a*W + (1-a)*C_k: C_k is a guess of the picture under
    the stamp that does not come from est alone (shared.estimate_shared: the network run blind on the
    picture with est inverted, which removes what est left of the stamp). Least squares in (a*W, a)
    over the set, pulled towards est by `ridge` (per picture and channel, against 3K equations), where
    est is see-through (matte under `see_through`: ops.UNBLEND_UP_TO, where the blend is inverted)
    and up to `grow` px around it (a matte too small can grow there).
    """
    h, w = est.matte.shape
    where = dilate(est.matte > 0, grow) & (est.matte < see_through)
    if not where.any():
        return est
    stamped = _in_frame(pictures, est.offsets, (h, w))
    under = _in_frame(cleans, est.offsets, (h, w))
    seen = np.isfinite(stamped[..., :1]) & np.isfinite(under[..., :1])
    matte, color = est.matte.copy(), est.color.copy()
    for y in range(0, h, band):  # in bands: a (h, w, 4, 4) system per pixel would be big for big stamps
        rows = slice(y, min(y + band, h))
        s = seen[:, rows].astype(np.float32)
        j, c = np.nan_to_num(stamped[:, rows]) * s, np.nan_to_num(under[:, rows]) * s
        d = j - c  # = a*W - a*C_k: linear in x = (a*W, a)
        a0 = est.matte[rows, :, None]
        system = np.zeros((*a0.shape[:2], 4, 4), np.float32)
        system[..., :3, :3] = s.sum(0)[..., None] * np.eye(3, dtype=np.float32)
        system[..., :3, 3] = system[..., 3, :3] = -c.sum(0)
        system[..., 3, 3] = (c * c).sum((0, 3))
        system += ridge * np.eye(4, dtype=np.float32)
        rhs = np.concatenate([d.sum(0), -(c * d).sum((0, 3))[..., None]], -1) + ridge * np.concatenate([a0 * est.color[rows], a0], -1)
        x = np.linalg.solve(system, rhs[..., None])[..., 0]
        a = np.clip(x[..., 3], 0, OPAQUE)
        inside = where[rows]
        matte[rows] = np.where(inside, a, matte[rows])
        refit_color = np.clip(x[..., :3] / np.maximum(a[..., None], 1e-3), 0, 1)
        color[rows] = np.where((inside & (a > MIN_MATTE))[..., None], refit_color, color[rows])
    matte = np.where(matte >= MIN_MATTE, matte, 0).astype(np.float32)
    return StampEstimate(matte=matte, color=color.astype(np.float32), offsets=list(est.offsets), misfit=est.misfit)


class _Adam:
    """Adam on numpy arrays, updated in place: each unknown moves at about `step` per iteration
    whatever the scale of its gradient (a faint stamp's colour barely moves the pictures)."""

    def __init__(self, params: list[np.ndarray], step: float, betas: tuple[float, float] = (0.9, 0.999)):
        self.params, self.step_size, self.betas, self.t = params, step, betas, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, grads: list[np.ndarray]) -> None:
        b1, b2 = self.betas
        self.t += 1
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= self.step_size * (m / (1 - b1**self.t)) / (np.sqrt(v / (1 - b2**self.t)) + 1e-8)


def _tv_gradient(x: np.ndarray, eps: float = 0.01) -> np.ndarray:
    """Gradient of the smoothed total variation sum sqrt(|grad x|^2 + eps^2) of x (..., H, W, C)."""
    gx, gy = forward_differences(x)
    norm = np.sqrt(gx**2 + gy**2 + eps**2)
    px, py = gx / norm, gy / norm
    out = np.zeros_like(x)  # minus the divergence of (px, py): the adjoint of the forward differences
    out[..., :, :-1, :] -= px[..., :, :-1, :]
    out[..., :, 1:, :] += px[..., :, :-1, :]
    out[..., :-1, :, :] -= py[..., :-1, :, :]
    out[..., 1:, :, :] += py[..., :-1, :, :]
    return out


# -- files ------------------------------------------------------------------------------------------


def save_stamp(path, est: StampEstimate) -> None:
    """An RGBA PNG a person can open: colour in RGB, matte in A. path: a file path or a binary file object."""
    rgba = np.concatenate([est.color, est.matte[..., None]], axis=2)
    if isinstance(path, (str, os.PathLike)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(rgba * 255 + 0.5, 0, 255).astype(np.uint8), "RGBA").save(path, format="PNG")


def load_stamp(path: str | Path) -> StampEstimate:
    im = Image.open(path)
    if im.mode != "RGBA":
        raise ValueError(f"{path}: a stamp file is an RGBA picture (colour + matte), this one is {im.mode}")
    rgba = np.asarray(im, np.float32) / 255.0
    return StampEstimate(matte=rgba[..., 3].copy(), color=rgba[..., :3].copy())


# -- numerics ---------------------------------------------------------------------------------------


def _grey(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], np.float32)


def _edges(rgb: np.ndarray) -> np.ndarray:
    """Gradient magnitude of the grey picture, zero-mean (for correlation)."""
    g = _grey(rgb)
    gx = np.zeros_like(g)
    gy = np.zeros_like(g)
    gx[:, :-1] = g[:, 1:] - g[:, :-1]
    gy[:-1] = g[1:] - g[:-1]
    e = np.sqrt(gx**2 + gy**2)
    return e - e.mean()


def _shift(ref: np.ndarray, other: np.ndarray) -> tuple[int, int]:
    """(dy, dx) such that other[y, x] matches ref[y + dy, x + dx] best (full cross-correlation by FFT)."""
    h = ref.shape[0] + other.shape[0]
    w = ref.shape[1] + other.shape[1]
    corr = np.fft.irfft2(np.fft.rfft2(ref, (h, w)) * np.conj(np.fft.rfft2(other, (h, w))), (h, w))
    # Normalise by the overlap area, so a large overlap is not favoured for its size alone.
    ones_r = np.fft.rfft2(np.ones(ref.shape), (h, w))
    ones_o = np.fft.rfft2(np.ones(other.shape), (h, w))
    area = np.fft.irfft2(ones_r * np.conj(ones_o), (h, w))
    min_area = 0.25 * min(ref.size, other.size)
    score = np.where(area > min_area, corr / np.maximum(area, 1), -np.inf)
    dy, dx = np.unravel_index(int(np.argmax(score)), score.shape)
    return (int(dy) if dy < h // 2 else int(dy) - h, int(dx) if dx < w // 2 else int(dx) - w)


# -- estimation -------------------------------------------------------------------------------------


def _align(pictures: list[np.ndarray]) -> list[tuple[int, int]]:
    """Offsets (y, x) of each picture relative to the first, so that their stamps coincide."""
    ref = _edges(pictures[0])
    return [(0, 0)] + [_shift(ref, _edges(p)) for p in pictures[1:]]


def _stack(pictures: list[np.ndarray], offsets: list[tuple[int, int]]) -> tuple[np.ndarray, tuple[int, int]]:
    """(K, H, W, 3) canvas with NaN where a picture does not reach; and the canvas origin."""
    top = min(oy for oy, _ in offsets)
    left = min(ox for _, ox in offsets)
    bottom = max(oy + p.shape[0] for (oy, _), p in zip(offsets, pictures, strict=True))
    right = max(ox + p.shape[1] for (_, ox), p in zip(offsets, pictures, strict=True))
    stack = np.full((len(pictures), bottom - top, right - left, 3), np.nan, np.float32)
    for k, ((oy, ox), p) in enumerate(zip(offsets, pictures, strict=True)):
        stack[k, oy - top : oy - top + p.shape[0], ox - left : ox - left + p.shape[1]] = p
    return stack, (top, left)


def _nan_lower_quantile(a: np.ndarray, q: float) -> np.ndarray:
    """np.nanquantile(a, q, axis=0, method="lower"), vectorised: numpy's own falls back to a Python
    call per pixel when NaNs are present (150k calls, 30 s of a 40 s estimate on 4 previews)."""
    n = np.isfinite(a).sum(0)
    ordered = np.sort(a, axis=0)  # NaNs sort last
    index = np.floor(q * np.maximum(n - 1, 0)).astype(np.intp)
    return np.where(n > 0, np.take_along_axis(ordered, index[None], 0)[0], np.nan)


def _median_gradients(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(median x-gradient, median y-gradient, agreement): agreement is how strongly nearly every
    picture has that same gradient (the lower quartile of their projections on the median), so
    an edge that only some pictures have, however strong, is not taken for the stamp's."""
    gx = np.full_like(stack, np.nan)
    gy = np.full_like(stack, np.nan)
    gx[:, :, :-1] = stack[:, :, 1:] - stack[:, :, :-1]
    gy[:, :-1] = stack[:, 1:] - stack[:, :-1]
    count = np.isfinite(gx[..., 0]).sum(0)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (picture borders) are expected
        mx = np.nanmedian(gx, axis=0)
        my = np.nanmedian(gy, axis=0)
        norm = np.sqrt((mx**2 + my**2).sum(-1, keepdims=True))
        along = ((gx * mx + gy * my) / np.maximum(norm, 1e-6)).sum(-1)  # (K, H, W)
        # "lower": an order statistic, not a blend of two. With 4 pictures that is the weakest one:
        # all 4 must agree (blending in the 2nd weakest let content shared by 3 of 4 pass: the matte
        # spilled over ~35% of the picture, error 0.063 -> 0.042 with this); with 8, the 2nd weakest.
        agreement = _nan_lower_quantile(along, 0.25)
    few = count < 2  # one picture alone says nothing about what is shared
    bad = few[..., None] | ~np.isfinite(mx) | ~np.isfinite(my)
    agreement = np.where(few | ~np.isfinite(agreement), 0, np.maximum(agreement, 0))
    return np.where(bad, 0, mx), np.where(bad, 0, my), agreement


def estimate_stamp(pictures: list[np.ndarray], smooth: int = 3, hints: list[np.ndarray] | None = None,
                   cleans: list[np.ndarray] | None = None,
                   reach_hints: bool | Callable[[StampEstimate], bool] = False) -> StampEstimate:
    """The shared stamp of 2+ pictures (H_k, W_k, 3) float32 in [0,1]; sizes and positions may differ.

    hints: optional per-picture mattes (H_k, W_k) from another source (the network's own, see
    shared.estimate_shared), averaged over the set and mixed into the matte where a stamp was found.
    cleans: optional per-picture guesses of what lies under the stamp (H_k, W_k, 3), e.g. the
    network's own removal: each picture's hint then counts as much as the picture differs from the
    stamp's colour there (over its own colour a stamp leaves no trace, and a hint of it says nothing).
    reach_hints: the stamp's region (where its matte is solved for) also takes in where the hints see
    a stamp around its edges (a soft glow has hardly any edges: HINT_REGION); or a function told the
    estimate made without that, saying whether to make it with it (the stamp's edges, most of the
    time, are found once for both).
    """
    if len(pictures) < 2:
        raise ValueError("estimating a stamp needs at least 2 pictures that share it")
    pictures = [np.asarray(p, np.float32) for p in pictures]
    if hints is not None and [h.shape for h in hints] != [p.shape[:2] for p in pictures]:
        raise ValueError("hints: one matte per picture, of its size")
    if cleans is not None and (hints is None or [c.shape for c in cleans] != [p.shape for p in pictures]):
        raise ValueError("cleans: one picture per picture, of its size, and only with hints")
    if len({p.shape for p in pictures}) > 1:
        found = _find_stamp(pictures, _align(pictures), realign=True)
    else:
        # Same size: usually the stamp sits at the same place in all, but a set may move it. Try
        # both and keep the one whose stamp edges the pictures agree on more strongly (alignment
        # on content can misfire: a margin keeps the plain answer unless the other is clearly better).
        found = _find_stamp(pictures, [(0, 0)] * len(pictures), realign=False)
        moved = _find_stamp(pictures, _align(pictures), realign=True)
        if moved.offsets != found.offsets and moved.score > MOVED_MARGIN * found.score:
            # Content shared by chance can out-agree a faint stamp's edges; where the network sees
            # the stamp in the pictures (hints), it has a say: its mattes must coincide at least
            # as well under the moved stamp. Measured on the 16 procedural sets of 4 of `desample
            # bench --shared 4 --limit 16`: two faint words taken for moving stamps (matte error in
            # the stamp ~0.3, one fell back to blind removal) now stay put: 23.43 -> 25.72 and
            # 19.44 -> 22.25 dB in the stamp; all 16 sets +0.32 dB.
            if hints is None or _hints_agree(hints, moved.offsets) >= _hints_agree(hints, found.offsets):
                found = moved
    hint_stack = None if hints is None else _stack([np.repeat(h[..., None], 3, 2) for h in hints], found.offsets)[0][..., 0]
    clean_stack = None if cleans is None else _stack(cleans, found.offsets)[0]
    found_parts = (found.stack, found.mx, found.my, found.support, found.origin, found.offsets, smooth, hint_stack, clean_stack)
    if not callable(reach_hints):
        return _decompose(*found_parts, reach_hints)
    plain = _decompose(*found_parts, False)
    return _decompose(*found_parts, True) if hints is not None and reach_hints(plain) else plain


def _hints_agree(hints: list[np.ndarray], offsets: list[tuple[int, int]]) -> float:
    """How much of the hints' (mattes') mass every picture agrees on, pictures placed at offsets:
    the sum of their minimum over the sum of their mean, where all pictures reach (0: nowhere)."""
    stack = _stack([h[..., None] for h in hints], offsets)[0][..., 0]
    everyone = np.isfinite(stack).all(axis=0)
    mean = stack[:, everyone].mean(0).sum()
    return float(stack[:, everyone].min(0).sum() / mean) if mean > 1e-6 else 0.0


@dataclass
class _Found:
    stack: np.ndarray
    mx: np.ndarray
    my: np.ndarray
    support: np.ndarray
    origin: tuple[int, int]
    offsets: list[tuple[int, int]]
    score: float  # how strongly the pictures agree on the stamp's strongest edges


def _find_stamp(pictures: list[np.ndarray], offsets: list[tuple[int, int]], realign: bool) -> _Found:
    """The stamp's edges (and the canvas) for pictures placed at offsets, re-aligned on them if asked."""
    top_n = max(16, int(0.002 * pictures[0].shape[0] * pictures[0].shape[1]))
    for attempt in range(3):
        stack, origin = _stack(pictures, offsets)
        mx, my, magnitude = _median_gradients(stack)
        # The stamp's edges: shared by (nearly) all pictures, well above what chance leaves.
        noise = np.median(magnitude[magnitude > 0]) if (magnitude > 0).any() else 0.0
        strongest = np.quantile(magnitude, 0.998)  # the stamp's own edges (a stamp covers more than 0.2%)
        support = dilate(magnitude > max(4 * noise, 0.2 * strongest, EDGE_FLOOR), 3)
        if not support.any():
            raise ValueError("no shared stamp found: the pictures have nothing in common")
        if not realign or attempt == 2:
            break
        # Re-find each picture against the stamp's own edge map (not the first picture's content).
        template = np.where(support, magnitude, 0)
        template = template - template[support].mean() * support
        new = [(dy + origin[0], dx + origin[1]) for dy, dx in (_shift(template, _edges(p)) for p in pictures)]
        new = [(oy - new[0][0], ox - new[0][1]) for oy, ox in new]
        if new == offsets:
            break
        offsets = new
    # Scored where every picture reaches: where only two overlap, strong content agrees by chance.
    everyone = np.isfinite(stack[..., 0]).all(axis=0)
    score = float(np.sort(magnitude[everyone])[-top_n:].mean()) if everyone.sum() >= top_n else 0.0
    return _Found(stack, mx, my, support, origin, list(offsets), score)


def _transparency(centred: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """log(1 - a) over a box, from how the pictures differ at neighbouring pixels.

    centred: (K, H, W, 3) pictures minus their mean; at pixel p they are (1 - a(p)) times the
    pictures' own differences, which neighbours share wherever the pictures are smooth (most of an
    anime picture is flat). So the energy ratio of neighbours gives the step of log(1 - a) across
    each edge, trusted as much as the two pixels' differences correlate; a weighted least-squares
    integration of the steps, with log(1 - a) = 0 outside the stamp, gives the field.
    """
    c = np.nan_to_num(centred)
    energy = (c * c).sum(axis=(0, 3))

    def edges(axis):
        a = c[:, :-1] if axis == 0 else c[:, :, :-1]
        b = c[:, 1:] if axis == 0 else c[:, :, 1:]
        ea = energy[:-1] if axis == 0 else energy[:, :-1]
        eb = energy[1:] if axis == 0 else energy[:, 1:]
        corr = (a * b).sum(axis=(0, 3)) / np.sqrt(np.maximum(ea * eb, 1e-12))
        step = 0.5 * np.log(np.maximum(eb, 1e-9) / np.maximum(ea, 1e-9))
        weight = np.clip(corr, 0, 1) ** 8 * (np.minimum(ea, eb) > 1e-6)
        return step, weight

    gy, wy = edges(0)
    gx, wx = edges(1)
    outside = (~inside).astype(np.float64) * 10.0 + 1e-7  # tiny inside: the field is free there
    b = np.zeros(energy.shape)
    b[:, 1:] += wx * gx
    b[:, :-1] -= wx * gx
    b[1:] += wy * gy
    b[:-1] -= wy * gy
    field = solve_spd(grid_laplacian(wx, wy, outside), b.ravel()).reshape(energy.shape)
    return np.minimum(field, 0.0)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """mask plus every region it encloses (what the border cannot reach without crossing it)."""
    outside = np.zeros_like(mask)
    outside[0, :], outside[-1, :], outside[:, 0], outside[:, -1] = ~mask[0, :], ~mask[-1, :], ~mask[:, 0], ~mask[:, -1]
    while True:
        grown = outside.copy()
        grown[1:] |= outside[:-1]
        grown[:-1] |= outside[1:]
        grown[:, 1:] |= outside[:, :-1]
        grown[:, :-1] |= outside[:, 1:]
        grown &= ~mask
        if (grown == outside).all():
            return ~outside
        outside = grown


def _decompose(stack, mx, my, support, origin, offsets, smooth: int, hints: np.ndarray | None = None,
               cleans: np.ndarray | None = None, reach_hints: bool = False) -> StampEstimate:
    # The stamp: its edges, the letters' insides (enclosed by their edges), the glow around them.
    region = dilate(_fill_holes(dilate(support, 2)), 6)
    if hints is not None and reach_hints:
        # A glow is soft: its edges are too weak for the median gradients, and a wide one reaches
        # past the letters' region, which would pin it at "no stamp". Where the second opinion (the
        # network's mattes, averaged over the set) sees a stamp around the letters, the region
        # reaches too (not where it sees one apart from them: the set shows no stamp there).
        from scipy import ndimage

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # where no picture reaches: NaN
            seen = np.nan_to_num(np.nanmean(hints, axis=0)) >= HINT_REGION
        parts, _ = ndimage.label(region | dilate(seen, HINT_REACH))
        region = np.isin(parts, np.unique(parts[region]))
    box = dilate(region, 8)  # and a ring of "no stamp" around it
    ys, xs = np.nonzero(box)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    sub = stack[:, y0:y1, x0:x1]
    inner = region[y0:y1, x0:x1]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # where no picture reaches: NaN, as meant
        mean = np.nanmean(sub, axis=0)
    matte = 1 - np.exp(_transparency(sub - mean, inner))
    # Where the pictures do not differ at all the stamp hides everything: opaque (the steps above
    # are blind there, having nothing to compare).
    spread = np.sqrt(np.nan_to_num((sub - mean) ** 2).sum(axis=(0, 3)))
    ring = ~inner & np.isfinite(mean[..., 0])
    matte = np.where(inner & (spread < OPAQUE_SPREAD * fill_from(spread, ring)), OPAQUE, matte)
    if smooth:
        # The stamp's structure, sharp and dense (Poisson reconstruction of the median gradients),
        # guides a light smoothing of what noise is left (radius 3: matte error in the stamp 0.070 ->
        # 0.060 with 8 real pictures than radius 6; radius 2-4 about the same, 10 worse).
        gx = np.where(support[..., None], mx, 0)[y0:y1, x0:x1]
        gy = np.where(support[..., None], my, 0)[y0:y1, x0:x1]
        structure = np.stack([poisson_solve(gx[..., c], gy[..., c]) for c in range(3)], -1)
        matte = guided_filter(structure, matte, smooth, 1e-4)
    matte = np.clip(np.where(inner & (matte >= MIN_MATTE), matte, 0), 0, OPAQUE).astype(np.float32)
    if hints is not None:
        # A second opinion, averaged over the set, weighs most where the set is small: with 4 real
        # pictures a 50/50 mix gave +1.2 dB inside the stamp after the inverse blend (every set
        # better), with 8 a quarter of it +0.1 (a half: no better).
        hints = hints[:, y0:y1, x0:x1]
        share = min(0.5, 2 / len(stack))
        plain = matte
        matte = _mixed(plain, _weighted_mean(hints, np.ones_like(hints)), share)
        if cleans is not None:
            # Each picture's opinion weighted by its squared distance to the stamp's colour (measured,
            # 4 real sets of 4: +0.32 dB inside the stamp after the inverse blend; 8: +0.31; procedural
            # sets of 4, whose colours seldom match a stamp's: +0.06).
            distance = ((cleans[:, y0:y1, x0:x1] - _color(sub, mean, matte, ring)) ** 2).sum(-1)
            matte = _mixed(plain, _weighted_mean(hints, np.where(matte > 0, distance, 1.0) + 1e-3), share)
    return StampEstimate(matte=matte, color=_color(sub, mean, matte, ring),
                         offsets=[(origin[0] + int(y0) - oy, origin[1] + int(x0) - ox) for oy, ox in offsets])


def _mixed(matte: np.ndarray, hint: np.ndarray, share: float) -> np.ndarray:
    """matte with `share` of hint mixed in, only where the set found a stamp."""
    mixed = (1 - share) * matte + share * np.nan_to_num(hint)
    return np.clip(np.where(matte > 0, mixed, 0), 0, OPAQUE).astype(np.float32)


def _weighted_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted mean over the first axis, leaving out NaN (where a picture does not reach)."""
    weights = np.where(np.isfinite(values), weights, 0)
    with np.errstate(all="ignore"):
        return (np.nan_to_num(values) * weights).sum(0) / weights.sum(0)


def _color(sub: np.ndarray, mean: np.ndarray, matte: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """The stamp's colour W: the set's mean is a*W + (1-a)*mean(I), so W follows from a and mean(I) under it."""
    mu = _mean_under(sub - mean, mean, matte, ring)
    with np.errstate(all="ignore"):
        color = (np.nan_to_num(mean) - (1 - matte[..., None]) * mu) / np.maximum(matte[..., None], 1e-3)
    return np.clip(np.where(matte[..., None] > 0.02, color, 0), 0, 1).astype(np.float32)


def _mean_under(centred: np.ndarray, mean: np.ndarray, matte: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """The pictures' mean under the stamp, mean(I) (H, W, 3), for J_k = a*W + (1-a)*I_k.

    Given a, each picture is I_k = mean(I) + centred_k / (1-a): only mean(I) is unknown. Anime is
    flat almost everywhere, so at each pixel step most pictures of a set do not change: mean(I)'s
    step is the one that leaves the median picture flat, -median_k(step of centred_k / (1-a)); a
    Poisson solve with mean(I) = the set's mean around the stamp integrates the steps. (Measured, 4
    sets of 4 real previews: +1.4 dB inside the stamp over a smooth fill from around it; 8: +1.3.)
    """
    region = dilate(matte > 0, 1)
    # Fixed outside: the set's own mean wherever no stamp was found (filled where no picture reaches).
    known = ~region & np.isfinite(mean[..., 0])
    filled = np.stack([fill_from(mean[..., c], known if known.any() else ring) for c in range(3)], -1)
    around = np.where(known[..., None], np.nan_to_num(mean), filled)
    if not region.any():
        return around
    gx, gy = forward_differences(centred / np.maximum(1 - matte[None, ..., None], 0.05))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no picture reaches some pixels: all-NaN there
        step_x = -np.nan_to_num(np.nanmedian(gx, axis=0))
        step_y = -np.nan_to_num(np.nanmedian(gy, axis=0))
    return poisson_inside(around, step_x, step_y, region)


def locate(est: StampEstimate, picture: np.ndarray) -> tuple[int, int]:
    """Where the stamp sits in a picture: its top-left (y, x), by matching edge maps."""
    seen = est.matte[..., None] * est.color + (1 - est.matte[..., None]) * 0.5  # the stamp over mid-grey
    picture = picture.astype(np.float32) / 255.0 if picture.dtype == np.uint8 else np.asarray(picture, np.float32)
    dy, dx = _shift(_edges(picture), _edges(seen))
    return dy, dx


# From this many pictures on, a shared stamp's matte and colour are read off the pictures' own
# statistics (moment_matched) rather than solved for from their edges.
MANY_PICTURES = 12
OPAQUE_DESIGN = 0.95  # a shared part this opaque in every picture is the pictures' own design (a frame's lines)
FAINT_LAYER = 0.1  # a matte under this is not worth inverting


def moment_matched(est: StampEstimate, pictures: list[np.ndarray], near: float = 0.08, support_from: float = 0.25) -> StampEstimate:
    """_moment_matched from all pictures, then again from those that can carry what it found
    (outside_the_blend): a few pictures without the stamp widen the quartiles under it, and the
    matte comes out fainter (a synthetic set of 16 with 2 such: 0.44 for 0.65). Their indices go
    to the result's `foreign`. (Judged again with the final estimate, once the network has said
    which part of it is the stamp: shared.estimate_shared.)"""
    first = _moment_matched(est, pictures, near, support_from)
    foreign = cannot_carry(first, pictures)
    if not foreign or len(pictures) - len(foreign) < 2:
        first.foreign = foreign
        return first
    keep = [k for k in range(len(pictures)) if k not in foreign]
    sub = StampEstimate(est.matte, est.color, offsets=[est.offsets[k] for k in keep])
    second = _moment_matched(sub, [pictures[k] for k in keep], near, support_from)
    return StampEstimate(matte=second.matte, color=second.color, offsets=list(est.offsets), foreign=foreign)


def cannot_carry(est: StampEstimate, pictures: list[np.ndarray]) -> list[int]:
    """The pictures (indices) that cannot be a blend with est (outside_the_blend over CANNOT_CARRY)."""
    outside = [outside_the_blend(est, p, off) for p, off in zip(pictures, est.offsets, strict=True)]
    return [k for k, v in enumerate(outside) if v is not None and v > CANNOT_CARRY]


def _moment_matched(est: StampEstimate, pictures: list[np.ndarray], near: float, support_from: float) -> StampEstimate:
    """The shared stamp read off many pictures' own statistics, in est's frame (est gives the frame
    and the offsets). Where the stamp is, each picture is J_k = a*W + (1-a)*I_k, so across the set
    J's spread is (1-a) times the pictures' own, and J's mean a*W + (1-a) times theirs. The
    pictures' own spread and mean there are taken from around it (within `near` x the frame's
    width: the upper quartile of the spreads, the median of the means, which a stamp covering less
    than a quarter of the window does not move). Needs many pictures (MANY_PICTURES): from 4 the
    spreads are too noisy.

    Why: the edge-based estimate leaves a scale free (a*W) and took a real set's white stamp at
    a = 0.68 for a grey one at 0.26 (optcg_set1, 26 cards at 233 px wide): inverted, the word stayed
    plain. What the set shares that is not a see-through layer drops out: its own opaque design
    (lines and plates identical in every picture: a above OPAQUE_DESIGN) is left as picture, and a
    text box whose text varies spreads J as much as the picture does.
    """
    from scipy import ndimage as ndi

    h, w = est.matte.shape
    stack = _in_frame([p.astype(np.float32) for p in pictures], est.offsets, (h, w))  # (K, h, w, 3)
    # Quartiles, not mean and deviation: robust to the few pictures that do not carry the stamp
    # (5 of optcg_set1's 31 carry another; with the deviation they halved the matte).
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN where no picture reaches
        q1, mean, q3 = np.nan_to_num(np.nanpercentile(stack, [25, 50, 75], axis=0))
    spread = (q3 - q1).mean(-1)  # (h, w)
    # Not smoothed: a 3x3 mean of the spread blurred the letters' edges into the matte (on
    # optcg_set1 at 233 px, residual 22% with it, 16.5% without).
    # The surroundings' statistics on a coarse grid (cheap at any size), brought back up: twice,
    # the second time leaving out where the first found a stamp (its pixels, brighter or darker and
    # less spread, would pull the statistics towards it).
    step = max(1, w // 64)
    reach = max(2, int(round(near * w / step)))
    coarse = (slice(step // 2, None, step), slice(step // 2, None, step))

    def up(x: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(x.astype(np.float32), mode="F").resize((w, h), Image.BILINEAR), np.float32)

    def around(x: np.ndarray, q: float, leave_out: np.ndarray | None) -> np.ndarray:
        small = x[coarse].astype(np.float64)
        if leave_out is not None:
            small = np.where(leave_out[coarse], np.nan, small)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a window with nothing left: NaN, filled below
            out = ndi.generic_filter(small, lambda v: np.nanpercentile(v, q), size=2 * reach + 1, mode="nearest")
        return up(np.where(np.isfinite(out), out, np.nanmedian(small)))

    keep = None
    for _ in range(2):
        leave_out = None if keep is None else dilate(keep, 2)
        ref_spread = around(spread, 75, leave_out)
        ref_mean = np.stack([around(mean[..., c], 50, leave_out) for c in range(3)], -1)
        keep = _layer(1 - spread / np.maximum(ref_spread, 1e-4), support_from)
    matte = np.clip(1 - spread / np.maximum(ref_spread, 1e-4), 0, 1)
    keep = _layer(matte, support_from)
    a = np.where(keep, matte, 0).astype(np.float32)
    # One colour (a stamp is one layer of one colour): each pixel's W = (J - (1-a) I) / a, with
    # the set's medians, and their median over the clearly stamped pixels.
    sure = keep & (a >= 0.3)
    if not sure.any():
        return StampEstimate(matte=np.zeros_like(a), color=np.zeros((h, w, 3), np.float32), offsets=list(est.offsets))
    each = (mean[sure] - (1 - a[sure, None]) * ref_mean[sure]) / a[sure, None]
    color = np.median(each, axis=0)
    # That takes the pictures around the stamp for those under it, and errs towards their colours
    # (optcg_set1 at 600 px: a white stamp read as (0.98, 0.97, 0.96); inverted, its letters stayed
    # lighter: residual 20%, with white 8%). No picture under it is lighter than white: I <= 1 gives
    # W >= (J - (1-a)) / a in every picture, and at each pixel the set's lightest picture bounds it
    # best; their median over the stamp bounds the colour from below (there: (1.0, 0.99, 0.99)).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN where no picture reaches
        lightest = np.nanmax(stack[:, sure], axis=0)  # (N, 3)
    known = np.isfinite(lightest).all(axis=1)
    if known.any():
        color = np.maximum(color, np.median((lightest[known] - (1 - a[sure][known, None])) / a[sure][known, None], axis=0))
    color = np.clip(color, 0, 1).astype(np.float32)
    a = _faint_edges_by_the_mean(a, mean, ref_mean, color)
    return StampEstimate(matte=a, color=np.where(keep[..., None], color, 0).astype(np.float32), offsets=list(est.offsets))


def _faint_edges_by_the_mean(a: np.ndarray, mean: np.ndarray, ref_mean: np.ndarray, color: np.ndarray) -> np.ndarray:
    """The faint part of the matte (a < 0.5), no more than the set's median moves towards the colour.

    The spread alone lets the matte leak a pixel or two past the letters (optcg_set1 at 233 px: 0.09
    two pixels out, where the cards are as light as farther away): inverted there, a dark outline.
    Where the stamp is, the median J - around = a (W - around); where the art around differs enough
    from W to tell, that bounds a."""
    towards = color[None, None, :] - ref_mean
    reach = (towards ** 2).sum(-1)
    by_mean = np.clip(((mean - ref_mean) * towards).sum(-1) / np.maximum(reach, 1e-6), 0, 1)
    faint = (a < 0.5) & (reach > 0.03)
    return np.where(faint, np.minimum(a, by_mean), a).astype(np.float32)


def _layer(matte: np.ndarray, support_from: float) -> np.ndarray:
    """Where a see-through layer is: clearly (support_from), in parts bigger than a pixel or two,
    with their soft edges, and never as opaque as a shared design's own lines (OPAQUE_DESIGN)."""
    from scipy import ndimage as ndi

    see_through = (matte >= FAINT_LAYER) & (matte <= OPAQUE_DESIGN)
    clear = ndi.binary_opening((matte >= support_from) & see_through, iterations=1)
    return dilate(clear, 1) & see_through


DETECTED_BY = 0.3  # share of the set's pictures in which the network must find a part of a many-picture stamp
# Parts of it smaller than this share of all of it are left out. Of all, not of the biggest part:
# how many letters a part holds depends on the picture's size (optcg_set1: at 233 px wide "SAMP" and
# "LE" are two parts, the card's edge a third of 3.1% of the whole; at 600 px "SAMP", "L" (9.6%) and
# "E" are three, and the biggest part's 15% had dropped the L).
SMALL_PART = 0.05
# A part of the stamp is found about as often as the rest of it: at least this share of as often as
# its most found part (optcg_set1 at 600 px: the letters 75-93% of the cards, the card's right edge,
# 6% of all, 33%).
SEEN_AS_OFTEN = 0.5
# Gaps within a letter where too few pictures found the stamp are closed over this share of the width.
CLOSE_GAPS = 1 / 120


def seen_by_the_set(est: StampEstimate, found: list[np.ndarray]) -> StampEstimate:
    """est (moment_matched) kept where the network, run blind on each picture, finds a stamp in at
    least DETECTED_BY of them (gaps of a letter closed, its edges let in), in parts of at least
    SMALL_PART of all of it that, on average over the part, that many pictures find, and at least
    SEEN_AS_OFTEN as many as its most found part: closing the gaps lets in parts of the pictures'
    own design a few find (optcg_set1 at 600 px: the cards' power number, found by 23% on average,
    their right edge 33%, the word's parts 75-93%). The set's statistics cannot tell a stamp from a
    see-through part of the pictures' shared design (a text box, a plate: the same physics); the
    network's view of each picture can, and a picture's own mistakes do not add up across the set."""
    from scipy import ndimage as ndi

    h, w = est.matte.shape
    probs = _in_frame(found, est.offsets, (h, w))  # NaN where a picture does not reach
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN where no picture reaches
        share = np.nanmean(np.where(np.isnan(probs), np.nan, probs > 0.5), axis=0)  # share of pictures finding it
    closed = ndi.binary_closing(np.nan_to_num(share) >= DETECTED_BY, iterations=max(2, round(w * CLOSE_GAPS)))
    seen = dilate(closed, max(1, round(w / 80)))
    kept = (est.matte > 0) & seen
    labels, n = ndi.label(kept)
    if n:
        sizes = ndi.sum(kept, labels, range(1, n + 1))
        found_by = ndi.mean(np.nan_to_num(share), labels, range(1, n + 1))
        often = found_by >= max(DETECTED_BY, SEEN_AS_OFTEN * found_by.max())
        kept = np.isin(labels, 1 + np.nonzero((sizes >= SMALL_PART * sizes.sum()) & often)[0])
    return StampEstimate(matte=np.where(kept, est.matte, 0).astype(np.float32),
                         color=np.where(kept[..., None], est.color, 0).astype(np.float32), offsets=list(est.offsets),
                         look_after=False, foreign=list(est.foreign))


# Share of a stamp's clear pixels outside the blend's range from which a picture does not carry it.
# optcg_set1 at 233 px wide: 25 of the cards under the set's stamp 0.005-0.082, one whose stamp is
# lighter 0.21; the 5 under a stamp of their own 0.29-0.37.
CANNOT_CARRY = 0.2
BLEND_SLACK = 0.5  # how far outside [0, 1] the picture under the stamp may seem: the estimate's errors, amplified by 1/(1-a)


def outside_the_blend(est: StampEstimate, picture: np.ndarray, offset: tuple[int, int]) -> float | None:
    """The share of the stamp's clear pixels (a >= 0.3) where picture cannot be J = a*W + (1-a)*I
    for any I in [0, 1]: the inverse blend I = (J - a*W) / (1-a) is more than BLEND_SLACK outside
    [0, 1] in some channel. About 0 in a picture that carries the stamp; a dark picture without it
    (under a white stamp) inverts far below 0. None when the stamp has no clear pixel in the picture."""
    matte, color = est.placed(picture.shape[:2], offset)
    clear = matte >= 0.3
    if not clear.any():
        return None
    a = matte[clear][:, None]
    j = picture[clear].astype(np.float32)
    under = (j - a * color[clear]) / np.maximum(1 - a, 1e-3)
    out = (under < -BLEND_SLACK) | (under > 1 + BLEND_SLACK)
    return float(out.any(axis=1).mean())
