"""Picture sources: any folder of images (recursive), the Danbooru2017/2018 layout with tag filtering.

Danbooru2017/2018 ship pictures as `original/<bucket>/<id>.<ext>` (or `512px/<bucket>/<id>.jpg`)
and metadata as JSON lines under `metadata/`, one post per line with `id` and `tags` (a list of
{"name": ...} objects, or a space-separated `tag_string`). Pictures tagged with a watermark or
text are skipped by default, so the "clean" side of a training pair is really clean.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
DEFAULT_SKIP_TAGS = frozenset(
    {"watermark", "sample_watermark", "text", "artist_name", "signature", "web_address", "english_text", "translated"}
)


def iter_image_files(root: str | os.PathLike) -> Iterator[Path]:
    """Image files under root, recursively, in a stable order (not loaded, only listed)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                yield Path(dirpath) / name


def _post_tags(post: dict) -> set[str]:
    tags = post.get("tags")
    if isinstance(tags, list):
        return {t["name"] if isinstance(t, dict) else str(t) for t in tags}
    return set(str(post.get("tag_string", "")).split())


def iter_danbooru_posts(root: Path) -> Iterator[tuple[str, set[str]]]:
    """(post id, tags) for every post of `root/metadata/**/*.json` (JSON lines), streamed."""
    meta_dir = root / "metadata"
    if not meta_dir.is_dir():
        return
    for path in sorted(meta_dir.rglob("*.json")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    post = json.loads(line)
                except json.JSONDecodeError:
                    continue  # one broken line should not cost the whole file
                if isinstance(post, dict) and "id" in post:
                    yield str(post["id"]), _post_tags(post)


def has_danbooru_metadata(root: str | os.PathLike) -> bool:
    return (Path(root) / "metadata").is_dir()


def skipped_posts(root: Path, skip_tags: Iterable[str]) -> set[str]:
    """Ids of the posts carrying any of skip_tags: only those are kept in memory, not every post's tags."""
    skip = set(skip_tags)
    return {pid for pid, tags in iter_danbooru_posts(root) if tags & skip}


def list_pictures(root: str | os.PathLike, skip_tags: Iterable[str] = DEFAULT_SKIP_TAGS) -> list[Path]:
    """Clean pictures under root. With Danbooru metadata, pictures carrying any of skip_tags are left out.

    For collections of millions of files use `desample.data.index` (built once, cached, sharded).
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"picture folder {root} does not exist")
    files = iter_image_files(root)
    if has_danbooru_metadata(root):
        skip = skipped_posts(root, skip_tags)
        return [p for p in files if p.stem not in skip]
    return list(files)


def is_holdout(name: str, fraction: float = 0.1, salt: str = "desample-val") -> bool:
    """Whether a file name belongs to the validation split: a hash, stable when files are added or removed."""
    return int(hashlib.sha1(f"{salt}:{name}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < fraction


def split_holdout(files: list[Path], fraction: float = 0.1, salt: str = "desample-val") -> tuple[list[Path], list[Path]]:
    """(train, validation), decided per file name by `is_holdout`."""
    train, val = [], []
    for p in files:
        (val if is_holdout(p.name, fraction, salt) else train).append(p)
    return train, val
