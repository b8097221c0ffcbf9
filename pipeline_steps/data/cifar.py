"""CIFAR-10 / CIFAR-100 in their *binary* release (``cifar-10-binary.tar.gz``,
``cifar-100-binary.tar.gz``): fixed-length records, read without unpickling anything.

CIFAR-10: ``cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin`` with records of 1 label byte +
3072 pixel bytes (1024 red, 1024 green, 1024 blue, row-major 32x32) and ``batches.meta.txt`` (one
class name per line).  CIFAR-100: ``cifar-100-binary/{train,test}.bin`` with records of a coarse
and a fine label byte + 3072 pixel bytes, and ``fine_label_names.txt``.

Zero-shot evaluation reads the test split as class folders (``imagefolder``): ``to_class_folders``
writes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from .records import FormatError

SIDE = 32
PIXELS = 3 * SIDE * SIDE
LAYOUTS = {  # name: (folder, test file, label names file, label bytes, which label byte)
    "cifar10": ("cifar-10-batches-bin", "test_batch.bin", "batches.meta.txt", 1, 0),
    "cifar100": ("cifar-100-binary", "test.bin", "fine_label_names.txt", 2, 1),
}


def label_names(path: Path) -> list[str]:
    if not path.is_file():
        raise FormatError(path, "", "label names file not found")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(names) < 2:
        raise FormatError(path, "", f"expected at least 2 class names, found {len(names)}")
    return names


def read_records(path: Path, n_labels: int, label_bytes: int, which: int) -> Iterator[tuple[int, np.ndarray]]:
    """(label, HxWx3 uint8 image) per record of a binary batch file."""
    if not path.is_file():
        raise FormatError(path, "", "batch file not found")
    data = np.fromfile(path, dtype=np.uint8)
    record = label_bytes + PIXELS
    if data.size == 0 or data.size % record:
        raise FormatError(path, "", f"{data.size} bytes is not a whole number of {record}-byte records")
    rows = data.reshape(-1, record)
    for i, row in enumerate(rows):
        label = int(row[which])
        if label >= n_labels:
            raise FormatError(path, f"record {i + 1}", f"label {label} but only {n_labels} class names")
        yield label, row[label_bytes:].reshape(3, SIDE, SIDE).transpose(1, 2, 0)


def to_class_folders(extracted: Path, name: str, dest: Path) -> int:
    """Write the test split of ``name`` (cifar10 | cifar100) as ``dest/<class>/<n>.png``."""
    folder, test_file, names_file, label_bytes, which = LAYOUTS[name]
    root = extracted / folder
    names = label_names(root / names_file)
    count = 0
    for n, (label, pixels) in enumerate(read_records(root / test_file, len(names), label_bytes, which)):
        out = dest / names[label] / f"{n:05d}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(out)
        count += 1
    return count


def write_binary(path: Path, labels: list[int], images: list[np.ndarray], label_bytes: int) -> None:
    """The inverse of ``read_records`` (the label goes in every label byte): for test mirrors."""
    rows = []
    for label, image in zip(labels, images):
        rows.append(np.concatenate([np.full(label_bytes, label, np.uint8),
                                    np.asarray(image, np.uint8).transpose(2, 0, 1).reshape(-1)]))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.stack(rows).tofile(path)
