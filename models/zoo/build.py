"""Build the zoo's model files with deterministic random weights (no download).

    python -m models.zoo.build --out build/zoo [--only NAME ...] [--family FAMILY ...] [--force]

Writes one file per entry (models/zoo/registry.py) and `manifest.json`: per file its family, format,
input specs, outputs, the CLI flags it needs and the build time. Existing files are kept unless --force.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

from models.zoo.registry import FAMILIES, ZooModel, select


def manifest_entry(model: ZooModel) -> dict:
    return {"family": model.family, "arch": model.arch, "format": model.format, "file": model.file,
            "inputs": [asdict(s) for s in model.inputs], "outputs": model.outputs, "cli_args": model.cli_args()}


def build(out: Path, models: list[ZooModel], force: bool = False, log=print) -> dict[str, str]:
    """Builds the missing files; returns {name: error} for the entries whose builder failed."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    errors = {}
    for model in models:
        path = out / model.file
        if path.exists() and not force and model.name in manifest:
            continue
        start = time.perf_counter()
        try:
            model.build(out)
        except Exception as error:  # one builder's failure is reported, the others still build
            errors[model.name] = f"{type(error).__name__}: {error}".splitlines()[0]
            log(f"{model.name:32s} FAILED {errors[model.name]}")
            continue
        entry = manifest_entry(model)
        entry["build_s"] = round(time.perf_counter() - start, 1)
        manifest[model.name] = entry
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        log(f"{model.name:32s} {entry['build_s']:6.1f}s  {path.stat().st_size / 2**20:7.1f} MB")
    return errors


def main(argv=None) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="build/zoo")
    parser.add_argument("--only", nargs="*", help="zoo names (see models/zoo/registry.py)")
    parser.add_argument("--family", nargs="*", choices=FAMILIES)
    parser.add_argument("--force", action="store_true", help="rebuild files that exist")
    args = parser.parse_args(argv)
    errors = build(Path(args.out), select(args.only, args.family), force=args.force)
    if errors:
        raise SystemExit(f"{len(errors)} zoo model(s) failed to build: {', '.join(errors)}")


if __name__ == "__main__":
    main()
