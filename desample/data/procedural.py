"""Procedural anime-like pictures: flat colour regions, cel shading, gradients, line art, hair strokes.

Used by the tests and the README demo (no copyrighted picture needed) and as extra training data.
Drawn at 2x and downscaled with a box filter, which anti-aliases like a real illustration.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def _color(rng, light=False):
    base = rng.uniform(0.55, 1.0, 3) if light else rng.uniform(0.1, 1.0, 3)
    return tuple(int(v * 255) for v in base)


def _shade(c, k):
    return tuple(int(max(0, min(255, v * k))) for v in c)


def _bezier(p0, p1, p2, n=32):
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _background(w, h, rng) -> Image.Image:
    c1, c2 = np.array(_color(rng, light=True), np.float32), np.array(_color(rng), np.float32)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    if rng.random() < 0.5:
        t = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    arr = (1 - t) * c1 + t * c2
    arr = np.broadcast_to(arr, (h, w, 3)).copy()
    return Image.fromarray(arr.astype(np.uint8))


def _blob(cx, cy, r, rng, n=None):
    n = n or int(rng.integers(5, 11))
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = r * rng.uniform(0.6, 1.2, n)
    return [(cx + rr * np.cos(a), cy + rr * np.sin(a)) for a, rr in zip(ang, rad, strict=True)]


def anime_picture(width: int = 512, height: int = 512, seed: int = 0) -> Image.Image:
    """An RGB picture with the statistics that matter for anime upscaling: flat areas, sharp dark lines."""
    rng = np.random.default_rng(seed)
    s = 2  # supersampling factor
    W, H = width * s, height * s
    img = _background(W, H, rng)
    d = ImageDraw.Draw(img)
    line_c = _shade(_color(rng), 0.25)
    lw_base = max(2, int(min(W, H) / rng.uniform(120, 260)))

    # Background scenery: soft shapes, some with a far-away blur.
    for _ in range(int(rng.integers(2, 6))):
        c = _color(rng, light=True)
        x, y, r = rng.uniform(0, W), rng.uniform(0, H), rng.uniform(0.1, 0.35) * min(W, H)
        d.polygon(_blob(x, y, r, rng), fill=c)
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(1, 4) * s))
        d = ImageDraw.Draw(img)

    # Foreground "characters": cel-shaded blobs (base colour, a shadow band, a highlight) with line art.
    for _ in range(int(rng.integers(2, 5))):
        c = _color(rng)
        cx, cy = rng.uniform(0.15, 0.85) * W, rng.uniform(0.15, 0.85) * H
        r = rng.uniform(0.12, 0.3) * min(W, H)
        pts = _blob(cx, cy, r, rng)
        d.polygon(pts, fill=c)
        # Cel shadow: the part of the blob not covered by a shifted copy of itself.
        mask = Image.new("L", (W, H), 0)
        ImageDraw.Draw(mask).polygon(pts, fill=255)
        off = rng.uniform(0.15, 0.35) * r
        shadow_mask = Image.new("L", (W, H), 0)
        ImageDraw.Draw(shadow_mask).polygon([(x - off, y - off * 0.5) for x, y in pts], fill=255)
        band = np.asarray(mask).astype(bool) & ~np.asarray(shadow_mask).astype(bool)
        img.paste(_shade(c, rng.uniform(0.6, 0.8)), mask=Image.fromarray((band * 255).astype(np.uint8)))
        # Highlight: a small light ellipse.
        if rng.random() < 0.7:
            hr = r * rng.uniform(0.08, 0.2)
            hx, hy = cx - r * 0.3, cy - r * 0.3
            d.ellipse([hx - hr, hy - hr * 0.6, hx + hr, hy + hr * 0.6], fill=_shade(c, 1.35))
        # Line art of varying width around the shape.
        lw = int(lw_base * rng.uniform(0.7, 1.8))
        d.line(pts + [pts[0]], fill=line_c, width=lw, joint="curve")
        # Eyes: two ellipses with pupils, a classic anime feature.
        if rng.random() < 0.5:
            er = r * 0.12
            for sx in (-1, 1):
                ex, ey = cx + sx * r * 0.3, cy
                d.ellipse([ex - er, ey - er * 1.4, ex + er, ey + er * 1.4], fill=(250, 250, 250), outline=line_c, width=lw)
                ic = _color(rng)
                d.ellipse([ex - er * 0.7, ey - er * 1.0, ex + er * 0.7, ey + er * 1.3], fill=ic)
                d.ellipse([ex - er * 0.3, ey - er * 0.4, ex + er * 0.3, ey + er * 0.6], fill=_shade(ic, 0.3))
                d.ellipse([ex - er * 0.45, ey - er * 0.8, ex - er * 0.1, ey - er * 0.4], fill=(255, 255, 255))

    # Hair strokes: bundles of curved lines with a shared colour and tapering widths.
    for _ in range(int(rng.integers(1, 4))):
        hc = _color(rng)
        ox, oy = rng.uniform(0, W), rng.uniform(0, H * 0.6)
        for _ in range(int(rng.integers(8, 25))):
            p0 = np.array([ox + rng.normal(0, W * 0.05), oy + rng.normal(0, H * 0.03)])
            p2 = p0 + np.array([rng.normal(0, W * 0.12), rng.uniform(0.1, 0.4) * H])
            p1 = (p0 + p2) / 2 + rng.normal(0, W * 0.06, 2)
            pts = [tuple(p) for p in _bezier(p0, p1, p2)]
            stroke = int(rng.uniform(2, 10) * s)
            d.line(pts, fill=hc, width=stroke, joint="curve")
            d.line(pts, fill=line_c, width=max(1, stroke // 5))

    # Sparkles and thin decorative lines.
    for _ in range(int(rng.integers(0, 12))):
        x, y, r = rng.uniform(0, W), rng.uniform(0, H), rng.uniform(2, 8) * s
        d.line([(x - r, y), (x + r, y)], fill=(255, 255, 240), width=s)
        d.line([(x, y - r), (x, y + r)], fill=(255, 255, 240), width=s)

    return img.resize((width, height), Image.BOX)
