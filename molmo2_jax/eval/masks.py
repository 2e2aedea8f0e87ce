"""COCO run-length-encoded masks (the format of Molmo2's eval masks) without pycocotools.

A COCO RLE is {"size": [h, w], "counts": ...}: alternating run lengths of 0s and 1s over the mask in
column-major (Fortran) order, starting with 0s. `counts` is a list of ints (uncompressed) or a string
(pycocotools' compressed form: 5-bit groups + 48, with a continuation bit, each run after the third
stored as the difference from the run two before).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def _decode_counts(counts: str) -> list[int]:
    """pycocotools `rleFrString`: the compressed string -> run lengths."""
    runs: list[int] = []
    i = 0
    data = counts.encode("ascii")
    while i < len(data):
        value, shift, more = 0, 0, True
        while more:
            c = data[i] - 48
            value |= (c & 0x1F) << (5 * shift)
            more = bool(c & 0x20)
            i += 1
            shift += 1
            if not more and c & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def _encode_counts(runs: list[int]) -> str:
    """pycocotools `rleToString`: run lengths -> the compressed string."""
    out = bytearray()
    for k, run in enumerate(runs):
        value = run - runs[k - 2] if k > 2 else run
        more = True
        while more:
            c = value & 0x1F
            value >>= 5
            more = not ((c & 0x10) == 0 and value == 0 or (c & 0x10) and value == -1)
            if more:
                c |= 0x20
            out.append(c + 48)
    return out.decode("ascii")


def decode_rle(rle: Mapping[str, Any]) -> np.ndarray:
    """COCO RLE (compressed or list counts) -> bool mask [h, w]."""
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    runs = _decode_counts(counts) if isinstance(counts, str) else [int(c) for c in counts]
    flat = np.zeros(h * w, dtype=bool)
    pos = 0
    for k, run in enumerate(runs):
        if k % 2:
            flat[pos:pos + run] = True
        pos += run
    if pos != h * w:
        raise ValueError(f"RLE runs cover {pos} pixels, the mask has {h}x{w}={h * w}")
    return flat.reshape((h, w), order="F")


def encode_rle(mask: np.ndarray, compressed: bool = True) -> dict[str, Any]:
    """bool mask [h, w] -> COCO RLE (pycocotools-compatible compressed string by default)."""
    mask = np.asarray(mask, dtype=bool)
    flat = mask.reshape(-1, order="F")
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist() if flat.size else []
    if flat.size and flat[0]:
        runs = [0] + runs  # runs start with 0s
    runs = [int(r) for r in runs]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": _encode_counts(runs) if compressed else runs}
