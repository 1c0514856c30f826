"""A picture index for collections of millions of files: built once, cached, read by shard.

Listing a Danbooru-sized folder takes minutes and holding every path (and every post's tags) in
each training process takes gigabytes. So one process walks the folders once and writes an
SQLite file (path, tags, validation flag) to a cache; every rank then reads only the row ids of
its own shard (8 bytes each) and looks a path up when it needs the picture.

    index = ensure_index(["/data/danbooru2018"], cache_dir="~/.cache/desample/index")
    ids = shard_ids(index, rank=0, world=2, split="train")

The file is written under a temporary name and renamed, so a reader never sees half an index.
A folder whose top-level modification time changed is indexed again; `rebuild=True` forces it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Sequence
from contextlib import closing
from pathlib import Path

import numpy as np

from .sources import DEFAULT_SKIP_TAGS, has_danbooru_metadata, is_holdout, iter_danbooru_posts, iter_image_files

INDEX_VERSION = 1
DEFAULT_CACHE = "~/.cache/desample/index"


def index_file(folders: Sequence[str | os.PathLike], skip_tags: Iterable[str], val_fraction: float,
               cache_dir: str | os.PathLike = DEFAULT_CACHE) -> Path:
    """Where the index of these folders lives: named by a hash of what decides its content."""
    key = json.dumps([INDEX_VERSION, [str(Path(f).expanduser().resolve()) for f in folders], sorted(skip_tags),
                      val_fraction])
    return Path(cache_dir).expanduser() / f"pictures-{hashlib.sha1(key.encode()).hexdigest()[:16]}.sqlite"


def _folder_stamp(folders: Sequence[str | os.PathLike]) -> str:
    return json.dumps([os.stat(f).st_mtime_ns for f in folders])


def build_index(folders: Sequence[str | os.PathLike], dest: Path, skip_tags: Iterable[str] = DEFAULT_SKIP_TAGS,
                val_fraction: float = 0.1) -> int:
    """Walk the folders once and write the index to dest (atomically). Returns the number of pictures."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    skip = set(skip_tags)
    try:
        db = sqlite3.connect(tmp)
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("CREATE TABLE pictures (id INTEGER PRIMARY KEY, path TEXT NOT NULL, tags TEXT, val INTEGER NOT NULL)")
        db.execute("CREATE TABLE info (key TEXT PRIMARY KEY, value TEXT)")
        count = 0
        for folder in folders:
            root = Path(folder).expanduser()
            if not root.is_dir():
                raise FileNotFoundError(f"picture folder {root} does not exist")
            posts = has_danbooru_metadata(root)
            if posts:  # posts' tags go through a table on disk, not a dict of millions in memory
                db.execute("CREATE TEMP TABLE IF NOT EXISTS posts (id TEXT PRIMARY KEY, tags TEXT)")
                db.execute("DELETE FROM posts")
                db.executemany("INSERT OR REPLACE INTO posts VALUES (?, ?)",
                               ((pid, " ".join(sorted(tags))) for pid, tags in iter_danbooru_posts(root)))
            rows = []
            for path in iter_image_files(root):
                tags = None
                if posts:
                    hit = db.execute("SELECT tags FROM posts WHERE id = ?", (path.stem,)).fetchone()
                    tags = hit[0] if hit else None
                    if tags and skip & set(tags.split()):
                        continue
                rows.append((str(path.resolve()), tags, int(is_holdout(path.name, val_fraction))))
                if len(rows) >= 10_000:
                    db.executemany("INSERT INTO pictures (path, tags, val) VALUES (?, ?, ?)", rows)
                    count += len(rows)
                    rows.clear()
            db.executemany("INSERT INTO pictures (path, tags, val) VALUES (?, ?, ?)", rows)
            count += len(rows)
        db.executemany("INSERT INTO info VALUES (?, ?)", [("folders", json.dumps([str(f) for f in folders])),
                                                          ("stamp", _folder_stamp(folders)), ("count", str(count))])
        db.commit()
        db.close()
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def _info(path: Path) -> dict[str, str]:
    with closing(_open(path)) as db:
        return dict(db.execute("SELECT key, value FROM info").fetchall())


def _open(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def ensure_index(folders: Sequence[str | os.PathLike], skip_tags: Iterable[str] = DEFAULT_SKIP_TAGS,
                 val_fraction: float = 0.1, cache_dir: str | os.PathLike = DEFAULT_CACHE, rebuild: bool = False) -> Path:
    """The cached index of these folders, built when missing, stale or asked for."""
    skip_tags = tuple(skip_tags)
    path = index_file(folders, skip_tags, val_fraction, cache_dir)
    if path.exists() and not rebuild:
        try:
            if _info(path).get("stamp") == _folder_stamp(folders):
                return path
        except sqlite3.DatabaseError:
            pass  # not an index (a torn copy?): build it again
    build_index(folders, path, skip_tags, val_fraction)
    return path


def shard_ids(path: Path, rank: int = 0, world: int = 1, split: str = "train", limit: int | None = None) -> np.ndarray:
    """Row ids of this rank's share of one split ("train" or "val"): every world-th picture."""
    val = {"train": 0, "val": 1}[split]
    query = "SELECT id FROM pictures WHERE val = ? AND (id % ?) = ? ORDER BY id"
    args: tuple = (val, world, rank)
    if limit is not None:
        query += " LIMIT ?"
        args += (limit,)
    with closing(_open(path)) as db:
        return np.fromiter((r[0] for r in db.execute(query, args)), dtype=np.int64)


class IndexReader:
    """Path (and tags) of a row id; one SQLite connection per process (DataLoader workers open their own)."""

    def __init__(self, path: Path):
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._pid = -1

    def __call__(self, row_id: int) -> tuple[Path, str | None]:
        if self._db is None or self._pid != os.getpid():
            self._db, self._pid = _open(self.path), os.getpid()
        path, tags = self._db.execute("SELECT path, tags FROM pictures WHERE id = ?", (int(row_id),)).fetchone()
        return Path(path), tags

    def __getstate__(self):
        return {"path": self.path}

    def __setstate__(self, state):
        self.__init__(state["path"])

    def count(self) -> int:
        return int(_info(self.path)["count"])
