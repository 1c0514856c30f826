"""Loading and saving pictures: EXIF orientation, every mode (L, P, RGBA, I;16, CMYK), alpha, atomic writes."""

from __future__ import annotations

import os
import tempfile
from glob import escape as glob_escape
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# Pillow's decompression-bomb guard stays on, with a bound generous enough for real art.
Image.MAX_IMAGE_PIXELS = 20000 * 20000


class ImageLoadError(ValueError):
    """The file could not be read as a picture."""


class TooLargeError(ImageLoadError):
    """The picture has more pixels than allowed (found from its header, before decoding)."""


# A file declaring more pixels than this per byte of its size is a decompression bomb (a 30 KB PNG
# declaring 16000x16000 has 8,500). Real pictures stay far below: JPEGs and photos under 20, flat
# line art and screenshots in PNG a few hundred; a blank 16 MP PNG about 1,000, hence the floor.
BOMB_PIXELS_PER_BYTE = 2000
BOMB_FROM_PIXELS = 4_000_000  # smaller pictures decode in well under a second whatever they declare


def looks_like_bomb(width: int, height: int, file_bytes: int | None) -> bool:
    """Whether a file's declared size is out of all proportion to its bytes."""
    pixels = width * height
    return file_bytes is not None and pixels >= BOMB_FROM_PIXELS and pixels > BOMB_PIXELS_PER_BYTE * max(file_bytes, 1)


def _file_bytes(path) -> int | None:
    try:
        if hasattr(path, "seek"):
            here = path.tell()
            path.seek(0, os.SEEK_END)
            size = path.tell()
            path.seek(here)
            return size
        return os.path.getsize(path)
    except (OSError, ValueError):
        return None


LOSSLESS_FORMATS = {"PNG", "BMP", "GIF", "PPM", "TGA", "QOI", "ICO", "TIFF"}


def is_lossless(path) -> bool:
    """Whether the file's format keeps every pixel as it was (PNG, BMP, TIFF without JPEG inside, ...):
    such a picture has no JPEG noise to reduce. JPEG, WebP (lossy or not: Pillow can't tell) and
    unreadable files: False. path: a file path or a binary file object (read from its start)."""
    try:
        if hasattr(path, "seek"):
            path.seek(0)
        with Image.open(path) as im:
            compression = str(im.info.get("compression", "")).lower()
            return im.format in LOSSLESS_FORMATS and "jpeg" not in compression
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return False
    finally:
        if hasattr(path, "seek"):
            path.seek(0)


def load_image(path, as_uint8: bool = False, max_pixels: int | None = None, name: str | None = None,
               refuse_bombs: bool = False, hint: str = "") -> tuple[np.ndarray, np.ndarray | None]:
    """(rgb, alpha): rgb (H, W, 3) float32 in [0,1] (uint8 if as_uint8: 4x less memory);
    alpha (H, W) float32 in [0,1] or None.

    path: a file path or a binary file object (then `name` is what error messages call it).
    max_pixels: refuse larger pictures from their header, before decoding anything.
    refuse_bombs: also refuse, from the header, a file whose declared pixels are out of all
    proportion to its bytes (looks_like_bomb). hint: how to raise the limit, added to both errors.
    """
    name = name or str(path)
    hint = f": {hint}" if hint else ""
    try:
        with Image.open(path) as im:
            if max_pixels is not None and im.width * im.height > max_pixels:
                raise TooLargeError(f"{name}: {im.width}x{im.height} is too large "
                                    f"({im.width * im.height / 1e6:.1f} MP; the limit is {max_pixels / 1e6:.1f} MP){hint}")
            if refuse_bombs and looks_like_bomb(im.width, im.height, _file_bytes(path)):
                raise TooLargeError(f"{name}: refused: it declares {im.width}x{im.height} "
                                    f"({im.width * im.height / 1e6:.1f} MP) in {_file_bytes(path):,} bytes, "
                                    f"a likely decompression bomb{hint}")
            im.load()
            im = ImageOps.exif_transpose(im)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as e:
        raise TooLargeError(f"{name}: {_why(e)}") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageLoadError(f"{name}: {_why(e)}") from e
    if as_uint8 and im.mode in ("RGB", "CMYK", "L", "P", "1", "YCbCr") and not (im.mode == "P" and "transparency" in im.info):
        return np.asarray(im.convert("RGB"), np.uint8), None
    rgb, alpha = pil_to_array(im)
    return (to_uint8(rgb) if as_uint8 else rgb), alpha


def _why(e: Exception) -> str:
    """Pillow's reason in a few plain words (its own messages repeat the path)."""
    if isinstance(e, Image.DecompressionBombError):
        return f"refused: too many pixels, possibly a decompression bomb ({str(e).split(' exceeds')[0].lower()})"
    if isinstance(e, PermissionError):
        return "permission denied"
    if isinstance(e, IsADirectoryError):
        return "is a folder"
    if isinstance(e, FileNotFoundError):
        return "no such file"
    text = str(e)
    if "truncated" in text:
        return "the file is truncated"
    if "cannot identify image file" in text:
        return "not a picture (empty, unknown or damaged format)"
    return f"not a readable picture ({text})"


def pil_to_array(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Any Pillow picture as (rgb float32 [0,1], alpha or None), keeping 16-bit precision."""
    alpha = None
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float32)
        arr = arr / (65535.0 if arr.max() > 255 else 255.0)
        rgb = np.repeat(arr[..., None], 3, axis=2)
        return np.clip(rgb, 0, 1), None
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float32)
        return np.repeat(np.clip(arr, 0, 1)[..., None], 3, axis=2), None
    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    if has_alpha:
        im = im.convert("RGBA")
        arr = np.asarray(im, dtype=np.float32) / 255.0
        rgb, alpha = arr[..., :3], arr[..., 3]
        if alpha.min() >= 1.0:
            alpha = None  # an all-opaque alpha channel is not worth carrying
        return np.ascontiguousarray(rgb), alpha
    if im.mode == "CMYK":
        im = im.convert("RGB")
    elif im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.float32) / 255.0, None


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """float in [0,1] -> uint8 (rounded); uint8 as is."""
    if arr.dtype == np.uint8:
        return arr
    return np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8)


def to_pil(rgb: np.ndarray, alpha: np.ndarray | None = None) -> Image.Image:
    """An RGB (or RGBA, with alpha; L from an (H, W) array) Pillow picture from float [0,1] or uint8 arrays."""
    if rgb.ndim == 2:
        return Image.fromarray(to_uint8(rgb), "L")
    if alpha is not None:
        return Image.fromarray(np.concatenate([to_uint8(rgb), to_uint8(alpha)[..., None]], axis=2), "RGBA")
    return Image.fromarray(to_uint8(rgb), "RGB")


def save_image(path: str | os.PathLike, rgb: np.ndarray, alpha: np.ndarray | None = None) -> None:
    """Write atomically (temp file + rename), so a crash never leaves half a picture behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    im = to_pil(rgb, alpha)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}.get(path.suffix.lower(), "PNG")
    if fmt == "JPEG" and im.mode == "RGBA":
        im = im.convert("RGB")
    for stale in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):  # left by a run killed while writing this file
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a saved picture gets the usual permissions
    try:
        im.save(tmp, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
