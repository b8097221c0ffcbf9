"""Prepared image shards: images packed into tar files with a parquet index.

A prepared dataset directory holds ``images-00000.tar``, ``images-00001.tar``, ... (each up to
``shard_size_mb``), ``images.parquet`` (key, shard, byte offset, size, visual domain, texture score)
and ``records.jsonl``.  DVC then hashes a handful of files instead of one per image, and readers
read sequentially.  Tar headers are normalised (mtime 0, uid/gid 0), so shards are reproducible
byte for byte.  Images are stored as their original bytes: no re-encoding.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import InputError, MissingInput

INDEX = "images.parquet"
RECORDS = "records.jsonl"


def texture_score(image: Image.Image) -> float:
    """Median absolute grey-level gradient: ~0 on flat backgrounds, large on textured ones.

    The median ignores object edges, which cover a minority of pixels.
    """
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    gx = np.abs(np.diff(grey, axis=1))[:-1, :]
    gy = np.abs(np.diff(grey, axis=0))[:, :-1]
    return float(np.median(gx + gy))


class ShardWriter:
    """Append images under unique keys; :meth:`close` writes the index."""

    def __init__(self, out_dir: str | Path, shard_size_mb: float, domain_threshold: float):
        self.out_dir = Path(out_dir)
        self.limit = int(shard_size_mb * 1024 * 1024)
        self.threshold = domain_threshold
        self.rows: list[dict] = []
        self.seen: set[str] = set()
        self.tar: tarfile.TarFile | None = None
        self.shard_name = ""
        self.shard_count = 0

    def _open_next(self) -> None:
        if self.tar is not None:
            self.tar.close()
        self.shard_name = f"images-{self.shard_count:05d}.tar"
        self.shard_count += 1
        self.tar = tarfile.open(self.out_dir / self.shard_name, "w", format=tarfile.USTAR_FORMAT)

    def add(self, key: str, data: bytes) -> None:
        if key in self.seen:
            return  # an image shared by several records is stored once
        try:
            image = Image.open(io.BytesIO(data))
            image.load()
        except Exception as e:  # noqa: BLE001 - PIL raises many types for a bad file
            raise InputError(f"image {key!r} cannot be decoded: {e}") from None
        self.seen.add(key)
        if self.tar is None or (self.tar.offset + len(data) > self.limit and self.tar.offset > 0):
            self._open_next()
        info = tarfile.TarInfo(name=key)
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        self.tar.addfile(info, io.BytesIO(data))
        # the data of the member just written ends at tar.offset (rounded up to 512 bytes)
        offset = self.tar.offset - ((len(data) + 511) // 512) * 512
        score = texture_score(image)
        self.rows.append({"key": key, "shard": self.shard_name, "offset": offset, "size": len(data),
                          "width": image.width, "height": image.height,
                          "domain": "textured" if score >= self.threshold else "plain",
                          "texture": round(score, 3)})

    def close(self) -> pd.DataFrame:
        if self.tar is not None:
            self.tar.close()
        index = pd.DataFrame(self.rows, columns=["key", "shard", "offset", "size", "width", "height",
                                                 "domain", "texture"])
        index.to_parquet(self.out_dir / INDEX, index=False)
        return index


class PreparedDataset:
    """Read a prepared dataset: records, image bytes by key, visual domain by key."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not (self.root / INDEX).is_file() or not (self.root / RECORDS).is_file():
            raise MissingInput(f"{self.root} is not a prepared dataset "
                                    f"(expected {INDEX} and {RECORDS}); run the prepare step")
        self.index = pd.read_parquet(self.root / INDEX).set_index("key")
        # key -> (shard, offset, size) as plain Python: a pandas lookup per image costs more than the read
        self._where = dict(zip(self.index.index, zip(self.index["shard"], self.index["offset"].tolist(),
                                                      self.index["size"].tolist())))
        self._files: dict[str, object] = {}

    def records(self, split: str | None = None) -> Iterator[dict]:
        with open(self.root / RECORDS, encoding="utf-8") as f:
            for line in f:
                record = json.loads(line)
                if split is None or record.get("split") == split:
                    yield record

    def image_bytes(self, key: str) -> bytes:
        shard, offset, size = self._where[key]
        f = self._files.get(shard)
        if f is None:
            f = self._files[shard] = open(self.root / shard, "rb")
        f.seek(offset)
        return f.read(size)

    def image(self, key: str) -> Image.Image:
        try:
            return Image.open(io.BytesIO(self.image_bytes(key))).convert("RGB")
        except Exception as e:  # noqa: BLE001 - PIL raises many types for a damaged file
            shard, offset, _ = self._where[key]
            raise InputError(f"{self.root}: image {key!r} ({shard} at byte {offset}) cannot be decoded: {e}; "
                             f"the prepared dataset is damaged: delete it and run prepare again") from None

    def domain(self, key: str) -> str:
        return str(self.index.at[key, "domain"])

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()

    def __enter__(self) -> "PreparedDataset":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
