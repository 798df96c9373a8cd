"""Channel pruning over the zoo's CNNs, written to bench/ZOO_PRUNE.md.

    python -m bench.zoo_prune [--only NAME ...] [--share 0.5]

Per model (models/zoo/, random seeded weights; missing files are built into build/zoo first): the file
loaded and cleaned as `qconvert` does, the channel groups found (qconvert/ir/channel_groups.py), how many
are prunable and why the others are left alone, then `--share` of every prunable group's channels
removed (L1, kept counts not rounded) and checked: the pruned graph against the unpruned one with the
removed channels' weights zeroed (zeroing equals removal), in onnxruntime on a seeded batch of 2. "exact"
is a largest difference within 1e-4 of the output's largest value. Parameters and MACs per sample are
the pass's own counts. One format per architecture (.pt2 for torchvision, .keras for Keras); the
transformers (vit_small, swin_t) are left out. Each model's result is kept in
build/zoo/results_prune/NAME.json, so `--only NAME` refreshes one row and the table is rebuilt from all.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

from bench.machine import describe
from models.zoo.registry import select

ZOO = Path("build/zoo")
RESULTS = ZOO / "results_prune"
FAMILIES = ("torchvision", "keras")
NOT_CNNS = {"vit_small", "swin_t"}
TOLERANCE = 1e-4


def cnn_entries(only: list[str] | None) -> list:
    models = [m for m in select(only) if m.family in FAMILIES and m.arch not in NOT_CNNS]
    return [m for m in models if m.format in ("pt2", "keras") and not m.options.get("keras2")]


def measure(model, share: float) -> dict:
    from qconvert.converters import load_source
    from qconvert.converters.input_spec import parse_input_shapes
    from qconvert.ir.channel_groups import reason_kind
    from qconvert.passes import cleanup
    from qconvert.passes.prune_channels import prune_channels
    from tests.passes.channel_zeroing import zeroed
    from tests.passes.helpers import random_inputs, run

    began = time.perf_counter()
    shapes = model.cli_args()[1::2]
    ir_model = cleanup(load_source(str(ZOO / model.file), input_specs=parse_input_shapes(shapes)).ir)
    pruned, report = prune_channels(ir_model, share, multiple_of=1)
    feeds = random_inputs(ir_model)
    worst = 0.0
    for want, got in zip(run(zeroed(ir_model, report.keep), feeds), run(pruned, feeds)):
        worst = max(worst, float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30)))
    frozen = dict(Counter(reason_kind(g.frozen) for g in report.groups if g.frozen).most_common())
    return {"name": model.name, "groups": len(report.groups), "prunable": sum(g.frozen is None for g in report.groups),
            "channels": sum(g.channels for g in report.groups),
            "prunable_channels": sum(g.channels for g in report.groups if g.frozen is None),
            "params": report.params_after / report.params_before, "macs": report.macs_after / max(report.macs_before, 1),
            "difference": worst, "frozen": frozen, "seconds": time.perf_counter() - began}


def markdown(results: list[dict], share: float) -> str:
    lines = ["# Channel pruning over the zoo's CNNs", "",
             f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}", f"- machine: {describe()}",
             f"- `python -m bench.zoo_prune --share {share:g}`: each prunable group loses {share:.0%} of its "
             "channels (L1 filter norm, `--prune-multiple-of 1`); exact: the pruned graph equals the unpruned "
             f"one with those channels' weights zeroed, within {TOLERANCE:g} of the largest output (onnxruntime)",
             "- groups: channel groups found; prunable: groups not left alone (their channels / all channels); "
             "params, MACs: after / before, per sample", "",
             "| model | groups | prunable | prunable channels | params | MACs | exact (max rel. diff) | "
             "left alone (groups: reason) |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['name']} | | | | | | failed: {r['error']} | |")
            continue
        exact = "yes" if r["difference"] <= TOLERANCE else "NO"
        if not r["prunable"]:
            exact = "- (nothing removed)"
        else:
            exact = f"{exact} ({r['difference']:.1e})"
        frozen = "; ".join(f"{n}: {reason}" for reason, n in r["frozen"].items())
        lines.append(f"| {r['name']} | {r['groups']} | {r['prunable']} | {r['prunable_channels']}/{r['channels']} "
                     f"| {r['params']:.3f}x | {r['macs']:.3f}x | {exact} | {frozen} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--share", type=float, default=0.5)
    parser.add_argument("--out", default="bench/ZOO_PRUNE.md")
    args = parser.parse_args()
    from models.zoo.build import build

    models = cnn_entries(args.only)
    build(ZOO, models)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for model in models:
        if not (ZOO / model.file).exists():
            result = {"name": model.name, "error": "the zoo builder failed (python -m models.zoo.build)"}
        else:
            try:
                result = measure(model, args.share)
            except Exception as error:  # one model's failure is a row, the others still run
                traceback.print_exc()
                result = {"name": model.name, "error": f"{type(error).__name__}: {str(error)[:160]}"}
        (RESULTS / f"{model.name}.json").write_text(json.dumps(result, indent=1))
        print(result, flush=True)
    kept = [RESULTS / f"{m.name}.json" for m in cnn_entries(None)]
    results = [json.loads(path.read_text()) for path in kept if path.exists()]
    Path(args.out).write_text(markdown(results, args.share))


if __name__ == "__main__":
    main()
