"""Image-caption pairs from a prepared dataset, decoded from the shards on demand."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.transforms.functional import pil_to_tensor

from ..errors import InputError
from ..data.shards import PreparedDataset


class CaptionedImages:
    """The records of one split of a prepared captions dataset (one record per caption)."""

    def __init__(self, prepared: str | Path, split: str = "train"):
        self.data = PreparedDataset(prepared)
        self.records = list(self.data.records(split))
        if not self.records:
            raise InputError(f"{prepared} has no '{split}' records")
        self.ids = [r["id"] for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def captions(self, indices) -> list[str]:
        return [self.records[i]["caption"] for i in indices]

    def pil_images(self, indices) -> list:
        return [self.data.image(self.records[i]["image"]) for i in indices]

    def images(self, indices, transform) -> torch.Tensor:
        """A batch through a CLIP preprocess transform (B, 3, H, W)."""
        return torch.stack([transform(im) for im in self.pil_images(indices)])

    def unit_images(self, indices) -> torch.Tensor:
        """A batch with values in [0, 1] at the stored size (the diffusion teacher's input)."""
        return torch.stack([pil_to_tensor(im).float() / 255 for im in self.pil_images(indices)])
