"""Image-caption pairs from a prepared dataset, decoded from the shards on demand."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.transforms.functional import pil_to_tensor

from ..errors import InputError
from ..data.shards import PreparedDataset


class CaptionedImages:
    """The records of one split of one or more prepared captions datasets (one record per caption),
    in the order of the datasets given."""

    def __init__(self, prepared: str | Path | list[str | Path], split: str = "train",
                 domains: list[str] | None = None):
        folders = [prepared] if isinstance(prepared, (str, Path)) else list(prepared)
        self.datasets = [PreparedDataset(folder) for folder in folders]
        self.records, self.source = [], []
        for k, (folder, data) in enumerate(zip(folders, self.datasets)):
            records = list(data.records(split))
            if domains is not None:  # only the images of these visual domains (measured when prepared)
                records = [r for r in records if data.domain(r["image"]) in domains]
            if not records:
                raise InputError(f"{folder} has no '{split}' records" + (f" of domain {domains}" if domains else ""))
            self.records += records
            self.source += [k] * len(records)
        # ids are unique within a dataset: prefix the later datasets' so they are across the corpus
        self.ids = [r["id"] if k == 0 else f"{Path(folders[k]).name}/{r['id']}"
                    for r, k in zip(self.records, self.source)]

    def __len__(self) -> int:
        return len(self.records)

    def captions(self, indices) -> list[str]:
        return [self.records[i]["caption"] for i in indices]

    def pil_images(self, indices) -> list:
        return [self.datasets[self.source[i]].image(self.records[i]["image"]) for i in indices]

    def images(self, indices, transform) -> torch.Tensor:
        """A batch through a CLIP preprocess transform (B, 3, H, W)."""
        return torch.stack([transform(im) for im in self.pil_images(indices)])

    def unit_images(self, indices) -> torch.Tensor:
        """A batch with values in [0, 1] at the stored size (the diffusion teacher's input)."""
        return torch.stack([pil_to_tensor(im).float() / 255 for im in self.pil_images(indices)])
