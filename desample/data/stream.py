"""Training pictures as an endless random stream, from a shard of the picture index.

A small shard (the shared folder: ~140 pictures) is decoded once and kept in memory; a big one
(Danbooru: millions) is decoded on the fly, optionally in DataLoader worker processes. Either
way a file that can't be decoded is skipped and counted (`bad`), never fatal.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import IterableDataset

from .index import IndexReader
from .pairs import flatten_alpha

MAX_SIDE = 4096  # bigger pictures are shrunk on decode (JPEG draft mode first): memory and time


def decode_picture(path: str | Path, rng: np.random.Generator | None = None) -> Image.Image | None:
    """RGB picture (alpha flattened, long side <= MAX_SIDE), or None when the file can't be decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning, broken EXIF, ...: decode what we can
            with Image.open(path) as im:
                im.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at a reduced size directly
                im.load()
                pic = flatten_alpha(im, rng)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    if max(pic.size) > MAX_SIDE:
        pic.thumbnail((MAX_SIDE, MAX_SIDE), Image.BOX)
    return pic


class PictureStream(IterableDataset):
    """Endless (picture or None, path) in a new random order each pass; workers split the shard."""

    def __init__(self, reader: IndexReader, ids: np.ndarray, seed: int):
        self.reader, self.ids, self.seed = reader, ids, seed

    def __iter__(self):
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        wid, n = (info.id, info.num_workers) if info else (0, 1)
        ids = self.ids[wid::n]
        rng = np.random.default_rng([self.seed, wid])
        if len(ids) == 0:
            return
        while True:
            for row in rng.permutation(ids):
                path, _ = self.reader(int(row))
                yield decode_picture(path, rng), str(path)


class PictureSource:
    """`next(source)` gives a random training picture, forever. `bad` counts unreadable files (once each).

    extra: pictures made in memory (the procedural ones), drawn in proportion to their number.
    """

    def __init__(self, reader: IndexReader | None, ids: np.ndarray, seed: int, extra: Sequence[Image.Image] = (),
                 workers: int = 0, in_memory: int = 500):
        self.rng = np.random.default_rng([seed, 7])
        self.extra = list(extra)
        self.bad = 0
        self.bad_files: list[str] = []  # the first few, for the log
        self._bad_seen: set[str] = set()
        self.pictures: list[Image.Image] | None = None
        self._stream = None
        if reader is None or len(ids) == 0:
            self.pictures = []
        elif len(ids) <= in_memory:
            self.pictures = []
            for row in ids:
                path, _ = reader(int(row))
                pic = decode_picture(path, self.rng)
                if pic is None:
                    self._count_bad(str(path))
                else:
                    self.pictures.append(pic)
        else:
            from torch.utils.data import DataLoader

            loader = DataLoader(PictureStream(reader, ids, seed), batch_size=None, num_workers=workers,
                                prefetch_factor=8 if workers else None, persistent_workers=workers > 0)
            self._stream = iter(loader)
            self._stream_size = len(ids)
        if self.pictures is not None:
            self.pictures += self.extra
            if not self.pictures:
                raise ValueError("no readable training pictures")

    def _count_bad(self, path: str) -> None:
        if path in self._bad_seen:  # a stream meets the same bad file again on every pass
            return
        self._bad_seen.add(path)
        self.bad += 1
        if len(self.bad_files) < 20:
            self.bad_files.append(path)

    def __iter__(self):
        return self

    def __next__(self) -> Image.Image:
        if self.pictures is not None:
            return self.pictures[int(self.rng.integers(len(self.pictures)))]
        if self.extra and self.rng.random() < len(self.extra) / (len(self.extra) + self._stream_size):
            return self.extra[int(self.rng.integers(len(self.extra)))]
        for _ in range(self._stream_size + 1):
            pic, path = next(self._stream)
            if pic is not None:
                return pic
            self._count_bad(path)
        raise ValueError("no readable training pictures in this shard")


def load_pictures(files: list[Path]) -> list[Image.Image]:
    """Decode once into memory (RGB, alpha flattened); unreadable files are skipped and counted."""
    rng = np.random.default_rng(0)
    pics = [decode_picture(p, rng) for p in files]
    bad = sum(p is None for p in pics)
    if bad:
        print(f"skipped {bad} unreadable picture(s)")
    return [p for p in pics if p is not None]
