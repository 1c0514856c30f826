"""The pictures' own text and graphics, drawn into the truth before a stamp is.

Why: real previews (trading cards, game art, manga pages, posters) carry their own frames, name
plates, rules-text boxes, numbers, titles, speech balloons and credits. A model that has only seen
stamps as text marks all of them and smears them (issue "real previews": on real cards the name
plates and power numbers were marked while the SAMPLE word was not). Drawn into the truth, they
are picture: the model learns that text alone is no stamp and must come out as it went in, sharp.

add_own_graphics(picture, rng) -> picture with 1-4 such elements, drawn at the picture's own size.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from ..stamps.fonts import available_fonts, condensed_fonts, load_font

WORDS = [
    "CHARACTER", "EVENT", "STAGE", "LEADER", "COUNTER", "Trigger", "On Play", "When Attacking", "Activate: Main",
    "Straw Hat Crew", "Navy", "Land of Wano", "The Seven Warlords", "Rush", "Blocker", "DON!!", "Life", "Draw 1 card",
    "Chapter 12", "Episode", "Limited Edition", "Special", "Vol. 3", "Original Soundtrack", "STAGE CLEAR", "LEVEL UP",
    "HP", "ATK", "DEF", "SKILL", "NEW!", "Wow!", "Huh?!", "...!", "BOOM", "What are you doing?", "I'm here!",
    "Illust.", "Artist", "Story", "Character Design", "Lv.", "Rank", "Score", "Ready?", "Start",
]
JAPANESE = ["特殊", "斬", "知", "キャラクター", "イベント", "なにっ!?", "ドン!!", "まさか…", "行くぞ!", "第一話", "限定版", "攻撃", "防御"]
CREDITS = ["©EO/S ©E.O.S. T.A.", "BANDAI MADE IN JAPAN", "Illust. {name}", "©{y} {name}", "{id}", "Printed in Japan", "TM & ©"]
ARTISTS = ["Nijihayashi", "Mayu Sakai", "turbot", "K. Aoi", "Studio Hoshi", "R. Mori", "yuzu"]


def _font(rng: np.random.Generator, size: float, bold: bool = True, cjk: bool = False):
    latin, cjk_fonts = available_fonts()
    if cjk and cjk_fonts:
        pool = cjk_fonts
    else:
        pool = list(latin)
        if bold:
            heavy = [p for p in pool if "bold" in p.lower()] + list(condensed_fonts())
            pool = heavy or pool
    return load_font(pool[int(rng.integers(len(pool)))] if pool else None, max(6, int(size)))


def _colour(rng: np.random.Generator, light: bool | None = None) -> tuple[int, int, int]:
    if light is None:
        return tuple(int(v) for v in rng.integers(0, 256, 3))
    lo, hi = (190, 256) if light else (0, 70)
    return tuple(int(v) for v in rng.integers(lo, hi, 3))


def _text(rng: np.random.Generator, cjk_share: float = 0.2) -> tuple[str, bool]:
    if rng.random() < cjk_share and available_fonts()[1]:
        return str(rng.choice(JAPANESE)), True
    if rng.random() < 0.25:
        return str(int(rng.choice([1, 2, 3, 4, 5, 6, 7, 8, 9, 1000, 2000, 5000, 6000, 9000, 12000]))), False
    return str(rng.choice(WORDS)), False


def _frame(draw: ImageDraw.ImageDraw, w: int, h: int, rng: np.random.Generator) -> None:
    band = int(min(w, h) * rng.uniform(0.02, 0.06))
    colour = (*_colour(rng), int(rng.integers(200, 256)))
    r = int(band * rng.uniform(0.5, 2.5))
    draw.rounded_rectangle((0, 0, w - 1, h - 1), radius=r, outline=colour, width=band)
    if rng.random() < 0.5:  # a thin inner line, as card frames have
        draw.rounded_rectangle((band, band, w - 1 - band, h - 1 - band), radius=r, outline=(*_colour(rng), 255), width=max(1, band // 5))


def _box_of_lines(draw, w, h, rng) -> None:
    """A rules-text box: a see-through light (or dark) panel with a few lines of small text."""
    bw, bh = int(w * rng.uniform(0.6, 0.95)), int(h * rng.uniform(0.1, 0.3))
    x, y = int(rng.uniform(0, w - bw)), int(rng.uniform(0.4 * h, max(0.4 * h + 1, h - bh)))
    light = rng.random() < 0.7
    panel = (*_colour(rng, light), int(rng.integers(120, 250)))
    draw.rounded_rectangle((x, y, x + bw, y + bh), radius=int(min(bw, bh) * rng.uniform(0, 0.2)), fill=panel)
    size = h * rng.uniform(0.02, 0.04)
    font = _font(rng, size, bold=rng.random() < 0.5)
    ink = (*_colour(rng, not light), 255)
    ty = y + size * 0.4
    while ty + size < y + bh:
        words = " ".join(str(rng.choice(WORDS)) for _ in range(int(rng.integers(2, 7))))
        if rng.random() < 0.3:  # a keyword tag in its own little box
            tag = str(rng.choice(["On Play", "Trigger", "Main", "When Attacking", "Blocker"]))
            tw = draw.textlength(tag, font=font)
            draw.rounded_rectangle((x + 4, ty, x + 8 + tw, ty + size * 1.1), radius=3, fill=(*_colour(rng), 255))
            draw.text((x + 6, ty), tag, font=font, fill=(255, 255, 255, 255))
            draw.text((x + 14 + tw, ty), words, font=font, fill=ink)
        else:
            draw.text((x + 4, ty), words, font=font, fill=ink)
        ty += size * rng.uniform(1.2, 1.6)


def _plate(draw, w, h, rng) -> None:
    """A name plate: a coloured bar with a name in it, and a smaller line under it."""
    bw, bh = int(w * rng.uniform(0.5, 0.9)), int(h * rng.uniform(0.05, 0.1))
    x, y = (w - bw) // 2 + int(rng.normal(0, 0.05) * w), int(h * rng.uniform(0.7, 0.92))
    draw.rounded_rectangle((x, y, x + bw, y + bh), radius=bh // 2, fill=(*_colour(rng), int(rng.integers(180, 256))))
    text, cjk = _text(rng)
    font = _font(rng, bh * rng.uniform(0.5, 0.8), cjk=cjk)
    tw = draw.textlength(text, font=font)
    light = rng.random() < 0.5
    draw.text((x + (bw - tw) / 2, y + bh * 0.1), text, font=font, fill=(*_colour(rng, light), 255),
              stroke_width=int(rng.integers(0, 3)), stroke_fill=(*_colour(rng, not light), 255))


def _number(draw, w, h, rng) -> None:
    """A big bold number (cost, power) in a corner, often in a disc, often outlined."""
    text = str(rng.choice(["1", "2", "3", "4", "5", "7", "9", "1000", "2000", "5000", "9000", "+1000", "+2000", "10"]))
    size = h * rng.uniform(0.05, 0.12)
    font = _font(rng, size)
    tw = draw.textlength(text, font=font)
    x = int(rng.choice([w * 0.03, w * 0.97 - tw]))
    y = int(rng.choice([h * 0.02, h * 0.9 - size]))
    if len(text) <= 2 and rng.random() < 0.6:
        r = size * 0.75
        draw.ellipse((x + tw / 2 - r, y + size * 0.55 - r, x + tw / 2 + r, y + size * 0.55 + r), fill=(*_colour(rng), 255))
    light = rng.random() < 0.5
    draw.text((x, y), text, font=font, fill=(*_colour(rng, light), 255),
              stroke_width=int(rng.integers(0, 4)), stroke_fill=(*_colour(rng, not light), 255))


def _title(draw, w, h, rng) -> None:
    """A title or a sound effect: big bold text anywhere, coloured, outlined or shadowed."""
    text, cjk = _text(rng, 0.3)
    font = _font(rng, h * rng.uniform(0.04, 0.1), cjk=cjk)
    tw = draw.textlength(text, font=font)
    x, y = rng.uniform(0, max(1, w - tw)), rng.uniform(0, h * 0.9)
    light = rng.random() < 0.5
    if rng.random() < 0.4:
        d = max(1, int(h * 0.005))
        draw.text((x + d, y + d), text, font=font, fill=(0, 0, 0, int(rng.integers(120, 230))))
    draw.text((x, y), text, font=font, fill=(*_colour(rng, light if rng.random() < 0.6 else None), 255),
              stroke_width=int(rng.integers(0, 4)), stroke_fill=(*_colour(rng, not light), 255))


def _balloon(draw, w, h, rng) -> None:
    """A speech balloon: a white ellipse with a dark outline and text inside."""
    bw, bh = w * rng.uniform(0.15, 0.4), h * rng.uniform(0.08, 0.2)
    x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
    draw.ellipse((x, y, x + bw, y + bh), fill=(255, 255, 255, 255), outline=(0, 0, 0, 255), width=max(1, int(h * 0.004)))
    text, cjk = _text(rng, 0.4)
    font = _font(rng, bh * rng.uniform(0.2, 0.35), bold=rng.random() < 0.5, cjk=cjk)
    tw = draw.textlength(text, font=font)
    draw.text((x + (bw - tw) / 2, y + bh * 0.35), text, font=font, fill=(0, 0, 0, 255))


def _credits(layer: Image.Image, rng) -> None:
    """Small credit lines along an edge, sometimes turned to run up the side."""
    w, h = layer.size
    text = str(rng.choice(CREDITS)).format(name=str(rng.choice(ARTISTS)), y=int(rng.integers(1998, 2027)),
                                           id=f"OP{int(rng.integers(1, 15)):02d}-{int(rng.integers(1, 120)):03d}")
    font = _font(rng, max(7, h * rng.uniform(0.012, 0.025)), bold=rng.random() < 0.3)
    strip = Image.new("RGBA", (int(font.getlength(text)) + 4, int(font.size * 1.4)), (0, 0, 0, 0))
    ImageDraw.Draw(strip).text((2, 0), text, font=font, fill=(*_colour(rng, rng.random() < 0.5), 255))
    if rng.random() < 0.5:
        strip = strip.rotate(int(rng.choice([90, 270])), expand=True)
    x = int(rng.choice([2, max(2, w - strip.width - 2)]))
    y = int(rng.uniform(0, max(1, h - strip.height)))
    layer.alpha_composite(strip, (min(x, max(0, w - strip.width)), min(y, max(0, h - strip.height))))


ELEMENTS = (_frame, _box_of_lines, _plate, _number, _title, _balloon)


def add_own_graphics(picture: Image.Image, rng: np.random.Generator) -> Image.Image:
    """picture (RGB) with 1-4 elements of its own design drawn in (frames, text boxes, plates, numbers,
    titles, balloons, credits). A card gets several of them: a frame, a box, a plate, a number."""
    w, h = picture.size
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    if rng.random() < 0.35:  # a card: the design all at once
        chosen = [_frame, _box_of_lines, _plate, _number, _number]
    else:
        chosen = [ELEMENTS[int(i)] for i in rng.choice(len(ELEMENTS), int(rng.integers(1, 4)), replace=False)]
    for element in chosen:
        element(draw, w, h, rng)
    if rng.random() < 0.5:
        _credits(layer, rng)
    return Image.alpha_composite(picture.convert("RGBA"), layer).convert("RGB")
