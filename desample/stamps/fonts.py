"""Find fonts for stamps and for the pictures' own text, with a clean fallback when none is installed.

Latin stamps use any TrueType font found in the usual folders. Japanese stamps need a CJK font: the
`train` extra installs one from PyPI (`matplotlib-fontja` ships IPAexGothic, IPA font licence), and
Debian's `fonts-noto-cjk` is used too where installed. The extra also installs Fjalla One (OFL), a
bold condensed face like the one real SAMPLE stamps are set in. Fonts inside packages are found
through the package's folder, without importing the package (matplotlib_fontja would import matplotlib).

Without a CJK font, Japanese words become Latin ones: fine for a quick test, wrong for training,
which refuses to start (require_cjk_font) unless told otherwise.
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import os

from PIL import ImageFont

FONT_DIRS = ["/usr/share/fonts", "/usr/local/share/fonts", os.path.expanduser("~/.fonts"), "/Library/Fonts", "C:/Windows/Fonts"]
# PyPI packages that carry font files (the train extra's), searched in their own folders.
FONT_PACKAGES = ("matplotlib_fontja", "font_fjallaone")
CJK_HINTS = ("cjk", "noto sans jp", "notosansjp", "ipag", "ipam", "ipaex", "takao", "vl-gothic", "droidsansjapanese", "msgothic", "meiryo")
# Bold condensed faces: how real preview stamps are set (bold, tall, narrow capitals).
CONDENSED_HINTS = ("condensed-bold", "condensedbold", "fjalla", "narrow-bold", "oswald", "anton", "bebas", "impact")


def _package_dirs() -> list[str]:
    dirs = []
    for name in FONT_PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.submodule_search_locations:
            dirs += list(spec.submodule_search_locations)
    return dirs


@functools.lru_cache(maxsize=1)
def available_fonts() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(latin font paths, cjk font paths) found on this machine, sorted for reproducibility."""
    paths: list[str] = []
    for d in FONT_DIRS + _package_dirs():
        for ext in ("ttf", "otf", "ttc"):
            paths += glob.glob(os.path.join(d, "**", f"*.{ext}"), recursive=True)
    paths = sorted(set(paths))
    cjk = tuple(p for p in paths if any(h in os.path.basename(p).lower() for h in CJK_HINTS))
    # Math and symbol fonts render words as boxes or glyph soup.
    latin = tuple(p for p in paths if p not in cjk and not any(s in p.lower() for s in ("math", "symbol", "emoji")))
    return latin, cjk


def condensed_fonts() -> tuple[str, ...]:
    """The bold condensed Latin faces found (may be empty: then any bold face, squeezed, stands in)."""
    return tuple(p for p in available_fonts()[0] if any(h in os.path.basename(p).lower() for h in CONDENSED_HINTS))


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


class MissingFontError(RuntimeError):
    pass


def require_cjk_font() -> None:
    """Raise, with the fix, where Japanese stamps cannot be drawn (training needs them)."""
    if not has_cjk_font():
        raise MissingFontError(
            "no Japanese (CJK) font found: Japanese stamps would silently be drawn as Latin words. "
            "Install the train extra (pip install -e '.[train]', which brings matplotlib-fontja's IPAexGothic) "
            "or Debian's fonts-noto-cjk; --allow-no-cjk-font trains without them anyway")
