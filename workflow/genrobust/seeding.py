"""Seeds derived from names, so that every image, mixture and run is reproducible on its own.

A seed depends only on what identifies the thing it seeds (e.g. global seed, strategy, split,
class, k), never on job order, shard count or batch size: re-sharding a dataset or resuming a
killed job gives the same images.
"""

from __future__ import annotations

import hashlib


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from the string forms of `parts` (stable across runs and machines)."""
    key = "/".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") & (2**63 - 1)
