"""Seeded random generators that depend on named parts, not on call order.

Every random draw of the pipeline (a synthetic scene, a split, an epoch's order, a bootstrap) comes
from ``rng_for(seed, *parts)``: the same seed and parts give the same stream on any machine and in
any job, whatever else ran before.
"""

from __future__ import annotations

import hashlib

import numpy as np


def rng_for(seed: int, *parts: object) -> np.random.Generator:
    """A generator seeded by a stable hash of ``seed`` and the parts (not Python's salted hash)."""
    digest = hashlib.sha256(repr((seed,) + parts).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))
