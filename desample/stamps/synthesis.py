"""Synthetic watermarks with an exactly known matte.

A stamp is a matte `alpha` (H, W) in [0,1] and a colour `color` (H, W, 3) in [0,1]; stamping is
alpha compositing, J = alpha * color + (1 - alpha) * I, so the clean picture, the matte and the
binary mask (alpha > MASK_THRESHOLD) are all known for training and evaluation.

Each stamp is built from layers (drop shadow, glow, outline, fill) combined with the "over"
operator into one (alpha, color) pair, then scaled by a global opacity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..ops import dilate
from .fonts import available_fonts, load_font

# Below this the stamp changes a pixel by at most ~5/255: not worth calling "stamped".
MASK_THRESHOLD = 0.02
MIN_SIDE = 48  # stamps are drawn on at least this many px a side
# Bumped when what make_stamp draws changes: validation numbers of different versions don't compare.
# 2: vertical words (Japanese top to bottom, Latin turned 90 degrees).
SYNTHESIS_VERSION = 2
VERTICAL_SHARE = 0.08  # of big words; the model trained without them gained 1.0 dB less over bicubic inside them

KINDS = ("word", "word_jp", "logo", "signature", "url", "tiled")
NEARLY_OPAQUE_SHARE = 0.25  # of real preview stamps (real_style)

LATIN_WORDS = [
    "SAMPLE", "SAMPLE", "SAMPLE", "Sample", "PREVIEW", "DRAFT", "PROOF", "DEMO", "COPY", "NOT FOR SALE",
    "SPECIMEN", "WIP", "CONFIDENTIAL", "STUDIO KAGAMI", "Aoi Works", "MOONLIT", "KOHAKU ART", "NEKOMATA",
    "HANABI Inc.", "Lumina", "TRIAL", "WATERMARK", "(C) 2026", "SAMPLE IMAGE",
]
JAPANESE_WORDS = ["見本", "サンプル", "見本", "試し読み", "複製禁止", "転載禁止", "サンプル画像", "校正", "非売品"]
NAMES = ["aoi", "mika_art", "Kohaku", "ren.", "Sora", "yuzu", "Hinata", "tsuki", "neko", "Akari", "R. Mori"]
URLS = [
    "www.example-studio.com", "pixiv.net/users/{n}", "@{name}_art", "twitter.com/{name}", "{name}.booth.pm",
    "fanbox.cc/@{name}", "https://{name}.jp", "(C){name} {y}", "www.{name}-works.net",
]


@dataclass
class Stamp:
    alpha: np.ndarray  # (H, W) float32 in [0,1]
    color: np.ndarray  # (H, W, 3) float32 in [0,1]
    kind: str

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool: pixels the stamp visibly changes."""
        return self.alpha > MASK_THRESHOLD


def apply_stamp(image: np.ndarray, stamp: Stamp) -> np.ndarray:
    """J = a*W + (1-a)*I for an (H, W, 3) float image in [0,1]."""
    a = stamp.alpha[..., None]
    return a * stamp.color + (1.0 - a) * image


def over(top_a, top_c, bot_a, bot_c):
    """Porter-Duff "over" for premultiplication-free (alpha, colour) layers."""
    out_a = top_a + bot_a * (1.0 - top_a)
    safe = np.maximum(out_a, 1e-6)[..., None]
    out_c = (top_a[..., None] * top_c + (bot_a * (1.0 - top_a))[..., None] * bot_c) / safe
    return out_a, out_c


def _random_color(rng: np.random.Generator) -> np.ndarray:
    r = rng.random()
    if r < 0.35:
        return np.full(3, rng.uniform(0.92, 1.0), np.float32)  # white, the usual SAMPLE stamp
    if r < 0.5:
        return np.full(3, rng.uniform(0.0, 0.2), np.float32)  # black
    if r < 0.6:
        return np.full(3, rng.uniform(0.35, 0.75), np.float32)  # grey
    hue = rng.random()
    sat = rng.uniform(0.5, 1.0)
    val = rng.uniform(0.6, 1.0)
    return np.array(_hsv_to_rgb(hue, sat, val), np.float32)


def _hsv_to_rgb(h, s, v):
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


def _contrast(c: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A colour that stands out against c (dark outline on light fill and the reverse)."""
    lum = float(c @ np.array([0.299, 0.587, 0.114], np.float32))
    if rng.random() < 0.25:
        return _random_color(rng)
    return np.full(3, rng.uniform(0.0, 0.25) if lum > 0.5 else rng.uniform(0.8, 1.0), np.float32)


def _text_shape(text: str, font, angle: float) -> Image.Image:
    """An 'L' image of the rendered text, rotated, cropped to its ink."""
    left, top, right, bottom = font.getbbox(text)
    pad = 4
    im = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
    ImageDraw.Draw(im).text((pad - left, pad - top), text, fill=255, font=font)
    if angle:
        im = im.rotate(angle, resample=Image.BICUBIC, expand=True)
    box = im.getbbox()
    return im.crop(box) if box else im


def _vertical_shape(text: str, font, angle: float) -> Image.Image:
    """Japanese written top to bottom: upright characters stacked in one column."""
    glyphs = [_text_shape(ch, font, 0.0) for ch in text if not ch.isspace()]
    gap = max(1, getattr(font, "size", 10) // 10)
    column_w = max(g.width for g in glyphs)
    im = Image.new("L", (column_w, sum(g.height for g in glyphs) + gap * (len(glyphs) - 1)), 0)
    y = 0
    for g in glyphs:
        im.paste(g, ((column_w - g.width) // 2, y))
        y += g.height + gap
    if angle:
        im = im.rotate(angle, resample=Image.BICUBIC, expand=True)
        box = im.getbbox()
        im = im.crop(box) if box else im
    return im


def _fit_font(text: str, font_path, target_w: float, target_h: float):
    """Largest font size whose rendering fits in target_w x target_h (unrotated)."""
    size = max(8, int(target_h))
    for _ in range(6):
        font = load_font(font_path, size)
        x0, y0, x1, y1 = font.getbbox(text)
        w, h = max(1, x1 - x0), max(1, y1 - y0)
        scale = min(target_w / w, target_h / h)
        if 0.9 < scale < 1.1:
            break
        size = max(6, int(size * scale))
    return load_font(font_path, size)


def _pick_font(rng, cjk: bool):
    latin, cjk_fonts = available_fonts()
    pool = cjk_fonts if cjk else latin
    if not pool:
        return None
    # Bold faces make the heavy stamps of official previews: prefer them.
    bold = [p for p in pool if "bold" in p.lower() or "black" in p.lower() or "heavy" in p.lower()]
    if bold and rng.random() < 0.75:
        pool = bold
    return pool[int(rng.integers(len(pool)))]


def _paste(canvas: np.ndarray, shape: Image.Image, x: int, y: int) -> None:
    """Max-combine an 'L' shape into a float canvas at (x, y), clipping at the borders."""
    s = np.asarray(shape, np.float32) / 255.0
    h, w = canvas.shape
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(w, x + s.shape[1]), min(h, y + s.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    region = s[y0 - y : y1 - y, x0 - x : x1 - x]
    np.maximum(canvas[y0:y1, x0:x1], region, out=canvas[y0:y1, x0:x1])


def _shape_word(h, w, rng, cjk: bool) -> np.ndarray:
    font_path = _pick_font(rng, cjk)
    if cjk and font_path is None:  # no CJK font here: fall back to a Latin word
        cjk = False
        font_path = _pick_font(rng, False)
    text = str(rng.choice(JAPANESE_WORDS if cjk else LATIN_WORDS))
    if not cjk and rng.random() < 0.15:
        text = text.lower()
    # Half level, the rest rotated up to 45 degrees or (VERTICAL_SHARE) vertical; the same draws
    # either way, so the other stamps of a seeded set stay what they were.
    orientation = rng.random()
    vertical = 0.5 <= orientation < 0.5 + VERTICAL_SHARE
    angle = 0.0 if orientation < 0.5 else float(rng.uniform(-45, 45))
    span = rng.uniform(0.45, 0.95)  # fraction of the picture the word spans
    if vertical:
        # A column along the height, slightly tilted; Latin turned to read bottom to top (or top to bottom).
        tilt = angle / 9
        font = _fit_font(text, font_path, span * h, w * rng.uniform(0.08, 0.3))
        shape = _vertical_shape(text, font, tilt) if cjk else _text_shape(text, font, tilt + math.copysign(90, angle))
    else:
        # A rotated word spans the diagonal-ish extent: size the unrotated text to fit.
        c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
        target_w = span * min(w / max(c, 1e-3), h / max(s, 1e-3)) if angle else span * w
        font = _fit_font(text, font_path, target_w, h * rng.uniform(0.08, 0.3))
        shape = _text_shape(text, font, angle)
    canvas = np.zeros((h, w), np.float32)
    x = int((w - shape.width) / 2 + rng.normal(0, 0.12) * w)
    y = int((h - shape.height) / 2 + rng.normal(0, 0.15) * h)
    _paste(canvas, shape, x, y)
    if rng.random() < 0.2:  # previews sometimes repeat the word, e.g. top and bottom (a column: left and right)
        along, across = rng.normal(0, 0.1), rng.choice([-1, 1]) * rng.uniform(0.3, 0.45)
        dx, dy = (across * w, along * h) if vertical else (along * w, across * h)
        _paste(canvas, shape, x + int(dx), y + int(dy))
    return canvas


def _corner_xy(h, w, sw, sh, rng, margin_frac=0.03):
    m = int(margin_frac * min(h, w)) + int(rng.integers(0, max(1, int(0.04 * min(h, w)))))
    xs = [m, w - sw - m]
    ys = [m, h - sh - m]
    if rng.random() < 0.25:
        return int(rng.integers(0, max(1, w - sw))), int(rng.integers(0, max(1, h - sh)))
    return int(rng.choice(xs)), int(rng.choice(ys))


def _shape_logo(h, w, rng) -> np.ndarray:
    size = int(min(h, w) * rng.uniform(0.1, 0.28))
    im = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(im)
    lw = max(1, size // int(rng.integers(8, 16)))
    form = rng.integers(4)
    if form == 0:
        d.ellipse([lw, lw, size - lw, size - lw], outline=255, width=lw)
    elif form == 1:
        d.rounded_rectangle([lw, lw, size - lw, size - lw], radius=size // 5, outline=255, width=lw)
    elif form == 2:
        pts = []
        for k in range(10):
            r = (size / 2 - lw) * (1.0 if k % 2 == 0 else 0.45)
            a = math.pi / 2 + k * math.pi / 5
            pts.append((size / 2 + r * math.cos(a), size / 2 - r * math.sin(a)))
        d.polygon(pts, fill=255 if rng.random() < 0.5 else None, outline=255)
    else:
        d.regular_polygon((size / 2, size / 2, size / 2 - lw), int(rng.integers(3, 7)), outline=255, width=lw)
    initials = "".join(chr(int(rng.integers(65, 91))) for _ in range(int(rng.integers(1, 4))))
    font = _fit_font(initials, _pick_font(rng, False), size * 0.55, size * 0.4)
    x0, y0, x1, y1 = font.getbbox(initials)
    d.text(((size - (x1 - x0)) / 2 - x0, (size - (y1 - y0)) / 2 - y0), initials, fill=255, font=font)
    if rng.random() < 0.3:
        im = im.rotate(float(rng.uniform(-30, 30)), resample=Image.BICUBIC, expand=True)
    canvas = np.zeros((h, w), np.float32)
    x, y = _corner_xy(h, w, im.width, im.height, rng)
    _paste(canvas, im, x, y)
    return canvas


def _shape_signature(h, w, rng) -> np.ndarray:
    name = str(rng.choice(NAMES))
    latin, _ = available_fonts()
    italic = [p for p in latin if "italic" in p.lower() or "oblique" in p.lower()]
    font_path = italic[int(rng.integers(len(italic)))] if italic else _pick_font(rng, False)
    font = _fit_font(name, font_path, w * rng.uniform(0.15, 0.35), h * rng.uniform(0.04, 0.1))
    text = _text_shape(name, font, float(rng.uniform(-15, 15)))
    # A flourish under the name: a quadratic curve drawn as a polyline.
    im = Image.new("L", (text.width + 8, text.height + max(6, text.height // 2)), 0)
    im.paste(text, (4, 0))
    d = ImageDraw.Draw(im)
    p0 = np.array([2.0, im.height * 0.8])
    p2 = np.array([im.width - 2.0, im.height * rng.uniform(0.6, 0.95)])
    p1 = np.array([im.width * rng.uniform(0.2, 0.8), im.height * rng.uniform(0.9, 1.2)])
    pts = [tuple((1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2) for t in np.linspace(0, 1, 24)]
    d.line(pts, fill=255, width=max(1, text.height // 10))
    canvas = np.zeros((h, w), np.float32)
    x, y = _corner_xy(h, w, im.width, im.height, rng)
    _paste(canvas, im, x, y)
    return canvas


def _url_text(rng) -> str:
    name = str(rng.choice(NAMES)).strip(".").replace(" ", "").replace(".", "").lower()
    return str(rng.choice(URLS)).format(n=int(rng.integers(10000, 9999999)), name=name, y=int(rng.integers(2010, 2027)))


def _shape_url(h, w, rng) -> np.ndarray:
    text = _url_text(rng)
    font = _fit_font(text, _pick_font(rng, False), w * rng.uniform(0.25, 0.7), h * rng.uniform(0.025, 0.06))
    shape = _text_shape(text, font, 0.0 if rng.random() < 0.8 else 90.0)
    canvas = np.zeros((h, w), np.float32)
    if rng.random() < 0.6:  # along the bottom edge, the usual place
        x = int(rng.choice([(w - shape.width) // 2, int(0.03 * w), w - shape.width - int(0.03 * w)]))
        y = h - shape.height - int(rng.uniform(0.01, 0.06) * h)
    else:
        x, y = _corner_xy(h, w, shape.width, shape.height, rng)
    _paste(canvas, shape, x, y)
    return canvas


def _shape_tiled(h, w, rng) -> np.ndarray:
    text = str(rng.choice(LATIN_WORDS + NAMES)) if rng.random() < 0.6 else _url_text(rng)
    cjk = rng.random() < 0.2 and available_fonts()[1]
    if cjk:
        text = str(rng.choice(JAPANESE_WORDS))
    font = _fit_font(text, _pick_font(rng, bool(cjk)), w * rng.uniform(0.15, 0.4), h * rng.uniform(0.03, 0.08))
    angle = float(rng.choice([0.0, 30.0, -30.0, 45.0, float(rng.uniform(-45, 45))]))
    shape = _text_shape(text, font, angle)
    canvas = np.zeros((h, w), np.float32)
    step_x = int(shape.width * rng.uniform(1.3, 2.2)) + 4
    step_y = int(shape.height * rng.uniform(1.5, 3.0)) + 4
    off_x, off_y = int(rng.integers(0, step_x)), int(rng.integers(0, step_y))
    for row, y in enumerate(range(-off_y, h, step_y)):
        shift = (step_x // 2) * (row % 2)
        for x in range(-off_x - shift, w, step_x):
            _paste(canvas, shape, x, y)
    return canvas


def _shape(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "word":
        return _shape_word(h, w, rng, cjk=False)
    if kind == "word_jp":
        return _shape_word(h, w, rng, cjk=True)
    if kind == "logo":
        return _shape_logo(h, w, rng)
    if kind == "signature":
        return _shape_signature(h, w, rng)
    if kind == "url":
        return _shape_url(h, w, rng)
    if kind == "tiled":
        return _shape_tiled(h, w, rng)
    raise ValueError(f"unknown stamp kind {kind!r}; known: {', '.join(KINDS)}")


def _blur(a: np.ndarray, radius: float) -> np.ndarray:
    im = Image.fromarray(np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return np.asarray(im.filter(ImageFilter.GaussianBlur(radius)), np.float32) / 255.0


def _dilate(a: np.ndarray, r: int) -> np.ndarray:
    """a (H, W) in [0,1] thickened by r px, in 8-bit steps (the stamps' drawing is 8-bit)."""
    return dilate(np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8), r).astype(np.float32) / 255.0


def style_shape(shape: np.ndarray, rng: np.random.Generator, kind: str = "word",
                glow: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Turn an ink shape (H, W) in [0,1] into (alpha, color) with fill, outline, glow, shadow.

    glow: always give it a glow (else sometimes, as drawn)."""
    h, w = shape.shape
    ink = float(np.sqrt(shape.sum() / max(1.0, (shape > 0.5).sum() ** 0.5)))  # ~ stroke thickness scale
    unit = max(1.0, min(h, w) / 300.0, ink * 0.3)
    fill_c = _random_color(rng)
    layers = []  # bottom to top: (alpha, color)
    big = kind in ("word", "word_jp", "logo")
    if rng.random() < (0.3 if big else 0.15):  # drop shadow
        dx, dy = (int(round(v)) for v in rng.uniform(1, 3.5, 2) * unit * rng.choice([-1, 1], 2))
        sh = np.roll(shape, (dy, dx), axis=(0, 1))
        sh = _blur(sh, rng.uniform(0.5, 2.5) * unit) * rng.uniform(0.4, 0.9)
        layers.append((sh, np.full(3, rng.uniform(0, 0.15), np.float32)))
    if (rng.random() < (0.45 if big else 0.2)) or glow:  # glow: the soft halo of preview stamps
        g = _blur(_dilate(shape, max(1, int(unit))), rng.uniform(2, 7) * unit)
        g = np.clip(g * rng.uniform(1.0, 2.5), 0, 1) * rng.uniform(0.3, 0.9)
        glow_c = fill_c if rng.random() < 0.5 else _random_color(rng)
        layers.append((g, glow_c))
    outline = rng.random() < (0.45 if big else 0.2)
    if outline:
        o = _dilate(shape, max(1, int(round(rng.uniform(0.7, 2.5) * unit))))
        layers.append((o * rng.uniform(0.6, 1.0), _contrast(fill_c, rng)))
    # Hollow (outline-only) stamps exist; otherwise the fill, sometimes with a gradient.
    fill_opacity = 0.0 if (outline and rng.random() < 0.15) else rng.uniform(0.7, 1.0)
    if fill_opacity > 0:
        if rng.random() < 0.2:
            c2 = _random_color(rng)
            t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
            col = (1 - t) * fill_c + t * c2
            col = np.broadcast_to(col, (h, w, 3))
        else:
            col = fill_c
        layers.append((shape * fill_opacity, col))
    alpha = np.zeros((h, w), np.float32)
    color = np.zeros((h, w, 3), np.float32)
    for la, lc in layers:
        alpha, color = over(la.astype(np.float32), np.broadcast_to(lc, (h, w, 3)).astype(np.float32), alpha, color)
    return alpha, color


def _opacity(rng: np.random.Generator, kind: str) -> float:
    r = rng.random()
    if kind == "tiled":
        return float(rng.uniform(0.12, 0.6))
    if r < 0.25:
        return float(rng.uniform(0.85, 1.0))  # opaque
    if r < 0.45:
        return float(rng.uniform(0.15, 0.35))  # faint
    return float(rng.uniform(0.35, 0.85))


def make_stamp(h: int, w: int, rng: np.random.Generator, kind: str | None = None, extra: bool = True) -> Stamp:
    """A random stamp of `kind` (random when None) for an h x w picture.

    With `extra`, a small second stamp (URL, signature, logo) sometimes joins the main one, as on
    real previews that carry both a SAMPLE word and the studio's address. Pictures under
    MIN_SIDE px get the middle of a stamp drawn for MIN_SIDE (text and logos need room to be drawn).
    """
    if h < MIN_SIDE or w < MIN_SIDE:
        big = make_stamp(max(h, MIN_SIDE), max(w, MIN_SIDE), rng, kind, extra)
        y, x = (big.alpha.shape[0] - h) // 2, (big.alpha.shape[1] - w) // 2
        return Stamp(alpha=big.alpha[y : y + h, x : x + w].copy(), color=big.color[y : y + h, x : x + w].copy(), kind=big.kind)
    if kind is None:
        # Big words are what users meet most: weight them up.
        kind = str(rng.choice(KINDS, p=[0.32, 0.18, 0.13, 0.1, 0.12, 0.15]))
    shape = _shape(kind, h, w, rng)
    alpha, color = style_shape(shape, rng, kind)
    alpha = alpha * _opacity(rng, kind)
    if extra and rng.random() < 0.25:
        k2 = str(rng.choice(["url", "signature", "logo"]))
        a2, c2 = style_shape(_shape(k2, h, w, rng), rng, k2)
        alpha, color = over(a2 * _opacity(rng, k2), c2, alpha, color)
    return Stamp(alpha=np.clip(alpha, 0, 1).astype(np.float32), color=np.clip(color, 0, 1).astype(np.float32), kind=kind)


def preview_stamp(h: int, w: int, rng: np.random.Generator, kind: str | None = None) -> Stamp:
    """A preview's typical stamp (`desample bench --shared-stamps preview`): a large see-through
    glowing word, Latin or Japanese, of any colour (outline, shadow and a fill gradient as
    make_stamp draws them), its opacity anywhere from faint to nearly opaque (0.15-0.85; make_stamp
    also draws opaque ones and words without a glow). kind: "word" or "word_jp" (None: either)."""
    kind = kind or ("word_jp" if rng.random() < 0.5 else "word")
    alpha, color = style_shape(_shape(kind, h, w, rng), rng, kind, glow=True)
    alpha = alpha * float(rng.uniform(0.15, 0.85))
    return Stamp(alpha=np.clip(alpha, 0, 1).astype(np.float32), color=np.clip(color, 0, 1).astype(np.float32), kind=kind)


def classic_sample_stamp(h: int, w: int, text: str = "SAMPLE", angle: float = 25.0, opacity: float = 0.6) -> Stamp:
    """The stamp of official previews, deterministic: a big bold white word with a dark outline and a glow."""
    rng = np.random.default_rng(0)
    font_path = _pick_font(rng, cjk=any(ord(ch) > 0x2E80 for ch in text))
    c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    target_w = 0.85 * min(w / max(c, 1e-3), h / max(s, 1e-3))
    shape_im = _text_shape(text, _fit_font(text, font_path, target_w, 0.3 * h), angle)
    shape = np.zeros((h, w), np.float32)
    _paste(shape, shape_im, (w - shape_im.width) // 2, (h - shape_im.height) // 2)
    unit = max(1.0, min(h, w) / 300.0)
    glow = np.clip(_blur(_dilate(shape, int(2 * unit)), 4 * unit) * 1.8, 0, 1) * 0.7
    outline = _dilate(shape, max(1, int(round(1.5 * unit))))
    white, dark = np.ones(3, np.float32), np.full(3, 0.2, np.float32)
    alpha, color = over(outline, np.broadcast_to(dark, (h, w, 3)), glow, np.broadcast_to(white, (h, w, 3)))
    alpha, color = over(shape, np.broadcast_to(white, (h, w, 3)), alpha, color)
    return Stamp(alpha=(alpha * opacity).astype(np.float32), color=color.astype(np.float32), kind="word")


REAL_WORDS = ["SAMPLE"] * 6 + ["Sample", "PREVIEW", "SAMPLE IMAGE", "NOT FOR SALE", "SPECIMEN"]
REAL_JAPANESE_WORDS = ["見本", "サンプル", "見本", "サンプル画像", "試し読み"]
COPYRIGHT_LINES = ["(C) {name} {y}", "© {name} / {name2}", "©{y} {name} All Rights Reserved", "© {name}"]


def _real_word(rng: np.random.Generator) -> tuple[str, bool]:
    """(text, is Japanese) of a real preview's stamp."""
    r = rng.random()
    if r < 0.2 and available_fonts()[1]:
        return str(rng.choice(REAL_JAPANESE_WORDS)), True
    if r < 0.28:
        line = str(rng.choice(COPYRIGHT_LINES))
        return line.format(name=str(rng.choice(NAMES)).upper(), name2=str(rng.choice(NAMES)), y=int(rng.integers(1995, 2027))), False
    return str(rng.choice(REAL_WORDS)), False


def _real_font(rng: np.random.Generator, cjk: bool) -> tuple[str | None, float]:
    """(font path, horizontal squeeze): a bold condensed face, or any bold face squeezed to look it."""
    from .fonts import condensed_fonts

    if cjk:
        return _pick_font(rng, True), float(rng.uniform(0.8, 1.0))
    condensed = condensed_fonts()
    if condensed and rng.random() < 0.6:
        return condensed[int(rng.integers(len(condensed)))], float(rng.uniform(0.85, 1.0))
    latin = available_fonts()[0]
    upright_bold = [p for p in latin if "bold" in p.lower() and not any(k in p.lower() for k in ("italic", "oblique", "mono"))]
    pool = upright_bold or latin
    return (pool[int(rng.integers(len(pool)))] if pool else None), float(rng.uniform(0.55, 0.95))


def real_shape(h: int, w: int, rng: np.random.Generator, place: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """The ink of a real preview's stamp: one big word in bold condensed capitals spanning 60-90% of
    the width, level (70%) or diagonal, near the middle. place = (span, angle, x offset, y centre),
    all as fractions, fixes it (a set's pictures share one place)."""
    text, cjk = _real_word(rng)
    font_path, squeeze = _real_font(rng, cjk)
    if place is None:
        angle = 0.0 if rng.random() < 0.7 else float(rng.choice([-1, 1]) * rng.uniform(15, 40))
        place = (float(rng.uniform(0.65, 0.92)), angle, float(rng.normal(0, 0.03)), float(rng.uniform(0.35, 0.62)))
    span, angle, dx, cy = place
    c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    target_w = span * min(w / max(c, 1e-3), h / max(s, 1e-3)) if angle else span * w
    font = _fit_font(text, font_path, target_w / squeeze, h * 0.4)
    flat = _text_shape(text, font, 0.0)
    flat = flat.resize((max(1, round(flat.width * squeeze)), flat.height), Image.BICUBIC)
    # Heavier strokes: stamps are set in black or heavy weights, which few fonts here have (CJK ones none).
    heavier = int(round(flat.height * rng.uniform(0.03, 0.07 if cjk else 0.04)))
    if heavier > 0:
        flat = flat.filter(ImageFilter.MaxFilter(2 * heavier + 1))
    if angle:
        flat = flat.rotate(angle, resample=Image.BICUBIC, expand=True)
    canvas = np.zeros((h, w), np.float32)
    _paste(canvas, flat, int((w - flat.width) / 2 + dx * w), int(cy * h - flat.height / 2))
    return canvas


def real_style(shape: np.ndarray, rng: np.random.Generator, opacity: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, colour) of a real preview's stamp: white (half), light grey or a colour, 45-95%
    opaque (a quarter of them 88-100%), plain (most) or with a shadow, a glow or an outline.

    Nearly opaque ones because real sets carry them (5 of the optcg_set1 cards: a solid white
    SAMPLE), and a model that saw stamps only up to 95% took those for the picture's own titles."""
    h, w = shape.shape
    unit = max(1.0, min(h, w) / 300.0)
    r = rng.random()
    if r < 0.5:
        fill = np.full(3, rng.uniform(0.95, 1.0), np.float32)
    elif r < 0.8:
        fill = np.full(3, rng.uniform(0.7, 0.92), np.float32)
    else:
        fill = _random_color(rng)
    layers = []
    effect = rng.random()
    if effect < 0.15:  # drop shadow
        d = int(round(rng.uniform(1, 3) * unit))
        sh = _blur(np.roll(shape, (d, d), axis=(0, 1)), rng.uniform(0.5, 2.0) * unit) * rng.uniform(0.3, 0.8)
        layers.append((sh, np.full(3, rng.uniform(0, 0.2), np.float32)))
    elif effect < 0.3:  # glow
        g = np.clip(_blur(_dilate(shape, max(1, int(unit))), rng.uniform(2, 6) * unit) * rng.uniform(1.0, 2.0), 0, 1)
        layers.append((g * rng.uniform(0.3, 0.8), fill))
    elif effect < 0.45:  # outline
        o = _dilate(shape, max(1, int(round(rng.uniform(0.7, 2.0) * unit))))
        layers.append((o * rng.uniform(0.6, 1.0), _contrast(fill, rng)))
    layers.append((shape, fill))
    alpha = np.zeros((h, w), np.float32)
    color = np.zeros((h, w, 3), np.float32)
    for la, lc in layers:
        alpha, color = over(la.astype(np.float32), np.broadcast_to(lc, (h, w, 3)).astype(np.float32), alpha, color)
    if opacity is None:
        opacity = float(rng.uniform(0.88, 1.0)) if rng.random() < NEARLY_OPAQUE_SHARE else float(rng.uniform(0.45, 0.95))
    a = opacity
    return np.clip(alpha * a, 0, 1).astype(np.float32), np.clip(color, 0, 1).astype(np.float32)


def real_preview_stamp(h: int, w: int, rng: np.random.Generator) -> Stamp:
    """A stamp as real previews carry it (real_shape, real_style): one word, mostly white or light grey."""
    alpha, color = real_style(real_shape(h, w, rng), rng)
    return Stamp(alpha=alpha, color=color, kind="real")
