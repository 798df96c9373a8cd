"""A conversion's output folder as `qconvert package` reads it: the report, one target's artifact and its I/O
contract, and what the conversion kept for packaging. Anything missing or unusable is one UsageError line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from qconvert.backends.targets import Target, all_targets
from qconvert.bundle import kept
from qconvert.errors import UsageError

PACKAGEABLE = ("ok",)  # an artifact that failed its parity floor is not shipped as verified


@dataclass
class Run:
    folder: Path
    report: dict
    row: dict  # the target's row in report.json
    target: Target
    artifact: Path
    io: dict  # <artifact>.io.json
    kept: kept.Kept


def open_run(folder: str | Path, name: str) -> Run:
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"package: {folder}: no such folder; pass the -o folder of a conversion")
    report = _read_json(folder / "report.json", f"{folder} is not a conversion's output folder (no report.json); "
                        "pass the -o folder of a `qconvert MODEL --to ...` run")
    targets = all_targets()
    if name not in targets:
        raise UsageError(f"package: unknown target {name}; valid targets: {', '.join(targets)}")
    rows = {r.get("target"): r for r in report.get("rows", []) if r.get("target") != "source"}
    if name not in rows:
        raise UsageError(f"package: target {name} is not in {folder} (it has {', '.join(rows) or 'no targets'}); "
                         f"convert with --to {name} first")
    row = rows[name]
    if row.get("status") not in PACKAGEABLE:
        raise UsageError(f"package: {name} in {folder} has status {row.get('status')} ({row.get('error')}); only an "
                         "artifact that passed its parity check is bundled")
    artifact = folder / Path(row.get("path") or "").name
    if not row.get("path") or not artifact.is_file():
        raise UsageError(f"package: {artifact}: the {name} artifact is missing; convert again")
    io = _read_json(artifact.with_name(artifact.name + ".io.json"), f"the I/O contract of {artifact.name} is "
                    "missing; convert again")
    packaging = kept.read(folder)
    if packaging is None or not packaging.ir_path(targets[name].consumes).is_file():
        raise UsageError(f"package: {folder / kept.FOLDER} is missing or incomplete (a conversion by an older "
                         "qconvert, or files removed); convert again")
    if not packaging.inputs:
        raise UsageError(f"package: {folder / kept.FOLDER}/golden.npz holds no samples; convert again")
    return Run(folder, report, row, targets[name], artifact, io, packaging)


def _read_json(path: Path, missing: str) -> dict:
    if not path.is_file():
        raise UsageError(f"package: {missing}")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UsageError(f"package: {path}: not readable JSON ({error}); convert again") from None
    if not isinstance(data, dict):
        raise UsageError(f"package: {path}: not a JSON object; convert again")
    return data
