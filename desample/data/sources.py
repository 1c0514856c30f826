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


def read_danbooru_metadata(root: Path) -> dict[str, set[str]] | None:
    """{post id: tags} from `root/metadata/**/*.json` (JSON lines), or None when there is none."""
    meta_dir = root / "metadata"
    if not meta_dir.is_dir():
        return None
    tags: dict[str, set[str]] = {}
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
                if "id" in post:
                    tags[str(post["id"])] = _post_tags(post)
    return tags


def list_pictures(root: str | os.PathLike, skip_tags: Iterable[str] = DEFAULT_SKIP_TAGS) -> list[Path]:
    """Clean pictures under root. With Danbooru metadata, pictures carrying any of skip_tags are left out."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"picture folder {root} does not exist")
    files = list(iter_image_files(root))
    meta = read_danbooru_metadata(root)
    if meta is not None:
        skip = set(skip_tags)
        files = [p for p in files if not (meta.get(p.stem, set()) & skip)]
    return files


def split_holdout(files: list[Path], fraction: float = 0.1, salt: str = "desample-val") -> tuple[list[Path], list[Path]]:
    """(train, validation), decided per file name by a hash: stable when files are added or removed."""
    train, val = [], []
    for p in files:
        h = int(hashlib.sha1(f"{salt}:{p.name}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        (val if h < fraction else train).append(p)
    return train, val
