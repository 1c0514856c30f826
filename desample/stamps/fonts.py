"""Find fonts for stamps on this machine, with a clean fallback when none is installed.

Latin stamps use any TrueType font found in the usual folders; Japanese stamps need a CJK font
(Debian: `apt-get install fonts-noto-cjk`). Without one, Japanese words are replaced by Latin ones
and Pillow's built-in font is used when no TrueType font exists at all.
"""

from __future__ import annotations

import functools
import glob
import os

from PIL import ImageFont

FONT_DIRS = ["/usr/share/fonts", "/usr/local/share/fonts", os.path.expanduser("~/.fonts"), "/Library/Fonts", "C:/Windows/Fonts"]
CJK_HINTS = ("cjk", "noto sans jp", "notosansjp", "ipag", "ipam", "takao", "vl-gothic", "droidsansjapanese", "msgothic", "meiryo")


@functools.lru_cache(maxsize=1)
def available_fonts() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(latin font paths, cjk font paths) found on this machine, sorted for reproducibility."""
    paths: list[str] = []
    for d in FONT_DIRS:
        for ext in ("ttf", "otf", "ttc"):
            paths += glob.glob(os.path.join(d, "**", f"*.{ext}"), recursive=True)
    paths = sorted(set(paths))
    cjk = tuple(p for p in paths if any(h in os.path.basename(p).lower() for h in CJK_HINTS))
    # Math and symbol fonts render words as boxes or glyph soup.
    latin = tuple(p for p in paths if p not in cjk and not any(s in p.lower() for s in ("math", "symbol", "emoji")))
    return latin, cjk


@functools.lru_cache(maxsize=256)
def load_font(path: str | None, size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """A font at `size` px; `path=None` gives Pillow's built-in scalable font."""
    size = max(6, int(size))
    if path is None:
        try:
            return ImageFont.load_default(size=size)
        except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
            return ImageFont.load_default()
    return ImageFont.truetype(path, size=size)


def has_cjk_font() -> bool:
    return bool(available_fonts()[1])
