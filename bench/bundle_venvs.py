"""Deployment bundles checked where a device-side user checks them: fresh venvs holding only numpy and one runtime.

    python -m bench.bundle_venvs [--models build/models] [--work build/bundle-venvs] [--out bench/BUNDLES.md]

1. Converts the reference Keras UNet (tflite-uint8) and VGG (tflite-uint8, onnx-qdq, torch-int8) with
   `--bundle --micro --threads 1 --runs 3` (the `make demo` lines otherwise).
2. Creates one venv per runtime (`python3 -m venv`) and installs numpy and the runtime at requirements.txt's
   pins, nothing else (pip pulls the runtime's own dependencies; `pip freeze` of each is recorded).
3. In each bundle: `sha256sum -c SHA256SUMS`, verify.py with the runtime's venv, then verify.py on a copy whose
   model file has one byte flipped (its one line and exit code).
4. Records the TFLite Micro facts of the uint8 bundles (arena, TFLM against LiteRT) from their manifests.

Writes OUT (Markdown): date, machine, commands, results. Not part of `make test`: it installs packages.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from qconvert.report.format import number

ROOT = Path(__file__).resolve().parent.parent
RUN = ["--bundle", "--micro", "--threads", "1", "--runs", "3"]
# The bundles the acceptance names: (run, target, runtime venv).
BUNDLES = [("unet", "tflite-uint8", "litert"), ("vgg", "tflite-uint8", "litert"), ("vgg", "onnx-qdq", "onnxruntime"),
           ("vgg", "torch-int8", "torch")]
RUNTIMES = {"litert": "ai-edge-litert", "onnxruntime": "onnxruntime", "torch": "torch"}


def conversions(models: Path, work: Path) -> dict[str, list[str]]:
    """The `make demo` lines, narrowed to the bundled targets."""
    return {
        "unet": ["qconvert", str(models / "unet.h5"), "--to", "tflite-uint8", "-o", str(work / "unet"),
                 "--calib", str(models / "unet_calib.npz"), "--eval", str(models / "unet_eval.npz"), *RUN],
        "vgg": ["qconvert", "models/vgg_torch.py:build", "--weights", str(models / "vgg_weights.pt"), "--trust-code",
                "--input-shape", "1,3,32,32", "--batch", "32", "--to", "tflite-uint8,onnx-qdq,torch-int8", "-o",
                str(work / "vgg"), "--calib", str(models / "vgg_calib.npz"), "--eval", str(models / "vgg_eval.npz"),
                *RUN],
    }


def pins() -> dict[str, str]:
    """requirements.txt's `name==version` lines."""
    found = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep:
            found[name.lower()] = version
    return found


def shell(command: list[str], cwd: Path | None = None, timeout: int = 3600) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def convert(name: str, command: list[str]) -> float:
    began = time.perf_counter()
    done = shell([sys.executable, "-m", "qconvert", *command[1:]], cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"bundle_venvs: {name}: {' '.join(command)} failed (exit {done.returncode}): "
                 f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    return time.perf_counter() - began


def make_venv(folder: Path, packages: list[str]) -> dict:
    """A fresh venv with `packages` only; its pip freeze and what it cannot import."""
    if folder.exists():
        shutil.rmtree(folder)
    began = time.perf_counter()
    created = shell(["python3", "-m", "venv", str(folder)])
    if created.returncode != 0:
        sys.exit(f"bundle_venvs: python3 -m venv {folder} failed: {created.stderr.strip()}")
    python = folder / "bin" / "python"
    installed = shell([str(python), "-m", "pip", "install", "--quiet", *packages])
    if installed.returncode != 0:
        sys.exit(f"bundle_venvs: pip install {' '.join(packages)} failed: "
                 f"{(installed.stderr.strip().splitlines() or ['no output'])[-1]}")
    freeze = shell([str(python), "-m", "pip", "freeze"]).stdout.split()
    absent = [m for m in ("qconvert", "tensorflow", "onnx", "onnxruntime", "ai_edge_litert", "torch")
              if shell([str(python), "-c", f"import {m}"], cwd=folder).returncode != 0]
    return {"python": python, "freeze": freeze, "absent": absent, "seconds": time.perf_counter() - began,
            "command": f"python3 -m venv {folder.name} && {folder.name}/bin/pip install {' '.join(packages)}"}


def verify_line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("verify:")]
    return lines[-1] if lines else (done.stdout + done.stderr).strip().splitlines()[-1]


def check_bundle(bundle: Path, python: Path, scratch: Path) -> dict:
    sums = shell(["sha256sum", "-c", "SHA256SUMS"], cwd=bundle)
    verified = shell([str(python), "verify.py"], cwd=bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    model = next(a["path"] for a in manifest["artifacts"] if a["role"] == "model")
    copy = scratch / bundle.name
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(bundle, copy)
    data = bytearray((copy / model).read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one byte, in the middle of the model
    (copy / model).write_bytes(bytes(data))
    tampered = shell([str(python), "verify.py"], cwd=copy)
    tampered_sums = shell(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=copy)
    return {"model": model, "files": len((bundle / "SHA256SUMS").read_text().splitlines()),
            "sums_rc": sums.returncode, "sums_ok": sums.stdout.count(": OK"),
            "verify_rc": verified.returncode, "verify": verify_line(verified),
            "tampered_rc": tampered.returncode, "tampered": verify_line(tampered),
            "tampered_lines": len([line for line in tampered.stderr.splitlines() if line.strip()]),
            "tampered_sums_rc": tampered_sums.returncode,
            "tampered_sums": (tampered_sums.stdout.strip().splitlines() or [""])[0],
            "micro": manifest.get("micro"), "static": manifest["static_shapes"], "runtime": manifest["target"]}


def write(out: Path, commands: dict, timings: dict, venvs: dict, results: dict, started: str) -> None:
    from bench.machine import describe

    lines = ["# Deployment bundles in fresh venvs", "",
             f"Run {started} by `python -m bench.bundle_venvs` on {describe()}; Python {platform.python_version()}.",
             "", "Each bundle was checked in a venv made by `python3 -m venv` holding only numpy and its runtime "
             "(at requirements.txt's pins; pip adds the runtime's own dependencies, listed below). In each venv "
             "`import qconvert`, `import tensorflow` and `import onnx` fail.", "", "## Conversions", ""]
    for name, command in commands.items():
        lines += [f"{name} ({number(timings[name], '.0f')} s):", "", "```", " ".join(command), "```", ""]
    lines += ["## Venvs", "", "| venv | made with | s | cannot import | pip freeze |", "|---|---|---:|---|---|"]
    for name, venv in venvs.items():
        lines.append(f"| {name} | `{venv['command']}` | {number(venv['seconds'], '.0f')} | "
                     f"{', '.join(venv['absent'])} | {' '.join(venv['freeze'])} |")
    lines += ["", "## Checks", "", "In each bundle folder: `sha256sum -c SHA256SUMS`, then `VENV/bin/python verify.py`; "
              "then in a copy with one bit of the model's middle byte flipped: `VENV/bin/python verify.py` and "
              "`sha256sum -c SHA256SUMS` again.", "",
              "| bundle | venv | files | sha256sum -c | verify.py | exit | batch 1, static | flipped byte: verify.py "
              "(all it printed) | exit | sha256sum -c |", "|---|---|---:|---|---|---:|---|---|---:|---:|"]
    for (run, target, venv), r in results.items():
        static = "yes" if r["static"]["all_static"] else "keeps " + ", ".join(r["static"]["dynamic_kept"])
        lines.append(f"| {run}/bundle-{target} | {venv} | {r['files']} | {r['sums_ok']} OK, exit {r['sums_rc']} | "
                     f"`{r['verify']}` | {r['verify_rc']} | {static} | `{r['tampered']}` ({r['tampered_lines']} "
                     f"line) | {r['tampered_rc']} | exit {r['tampered_sums_rc']}: `{r['tampered_sums']}` |")
    lines += ["", "## TFLite Micro (uint8 bundles)", "",
              "The golden set run in the tflite-micro Python interpreter: the arena the RecordingMicroAllocator "
              "reports, confirmed by a second run in exactly that arena; outputs against LiteRT's on the same inputs.",
              "", "| bundle | tflite-micro | arena bytes | TFLM vs LiteRT: max steps | max abs difference | elements "
              "differing | output elements |", "|---|---|---:|---:|---:|---:|---:|"]
    for (run, target, _), r in results.items():
        micro = r["micro"]
        if micro:
            lines.append(f"| {run}/bundle-{target} | {micro['version']} | {number(micro['arena_bytes'], ',d')} | "
                         f"{number(micro['max_steps'], 'd')} | {number(float(micro['max_abs_difference']), '.3g')} | "
                         f"{number(micro['differing_pct'], '.2f')} % | {number(micro['elements'], ',d')} |")
    lines += ["", "The same figures are in each run's report (report.json `bundles`, report.html's deployment "
              "bundles section) and in the bundle's manifest.json and README.md.", ""]
    out.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="build/models")
    parser.add_argument("--work", default="build/bundle-venvs")
    parser.add_argument("--out", default="bench/BUNDLES.md")
    args = parser.parse_args(argv)
    if shutil.which("sha256sum") is None:
        sys.exit("bundle_venvs: sha256sum is not on PATH (coreutils)")
    models, work = Path(args.models).resolve(), Path(args.work).resolve()
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    for name in ("unet", "vgg"):
        shutil.rmtree(work / name, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    commands = conversions(models, work)
    timings = {name: convert(name, command) for name, command in commands.items()}
    pinned = pins()
    numpy = f"numpy=={shell([sys.executable, '-c', 'import numpy; print(numpy.__version__)']).stdout.strip()}"
    venvs = {name: make_venv(work / f"venv-{name}", [numpy, f"{package}=={pinned[package]}"])
             for name, package in RUNTIMES.items()}
    results = {(run, target, venv): check_bundle(work / run / f"bundle-{target}", venvs[venv]["python"],
                                                 work / "tampered")
               for run, target, venv in BUNDLES}
    write(Path(args.out), {k: [re.sub(f"^{re.escape(str(ROOT))}/", "", c) for c in v] for k, v in commands.items()},
          timings, venvs, results, started)
    failed = [f"{run}/{target}" for (run, target, _), r in results.items()
              if r["verify_rc"] != 0 or r["sums_rc"] != 0 or r["tampered_rc"] != 1]
    print(f"bundle_venvs: {args.out} written; " + (f"FAILED: {', '.join(failed)}" if failed else "every check as "
                                                     "expected"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
