"""Typed errors for media Molmo2 cannot read (broken, empty, hostile or unsupported files)."""

from __future__ import annotations


class MediaError(ValueError):
    """An image or video that cannot be turned into Molmo2 crops/frames; names the file and why."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot read {path}: {reason}")
