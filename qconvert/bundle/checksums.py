"""sha256 of files, and the SHA256SUMS list that `sha256sum -c SHA256SUMS` checks."""

from __future__ import annotations

import hashlib
from pathlib import Path

SUMS = "SHA256SUMS"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_sums(folder: Path) -> list[str]:
    """SHA256SUMS over every other file of the folder (relative POSIX paths, sorted), in sha256sum's text
    format (`HASH  NAME`); returns the names listed."""
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != SUMS)
    (folder / SUMS).write_text("".join(f"{sha256(folder / name)}  {name}\n" for name in names))
    return names
