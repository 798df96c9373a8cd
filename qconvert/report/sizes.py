"""Sizes on disk, raw and compressed. Pruned zeros shrink no file by themselves; they show once the file is
compressed, so every row reports both. The compressed size is tfmot's measure (its pruning guide's
get_gzipped_model_size): the file written into a zip archive with deflate, here at level 9, and the
archive's size counted, headers included."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path


def zipped_bytes(path: str | Path) -> int:
    path = Path(path)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.write(path, path.name)
    return buffer.getbuffer().nbytes
