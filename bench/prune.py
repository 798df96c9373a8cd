"""Part of `make bench`: pruning on the IR next to tfmot and torch.nn.utils.prune, written to bench/PRUNE.md.

The experiments pruning users repeat, on the reference models (models.build) and their own training,
calibration and evaluation sets:

- VGG curve: L1 unstructured pruning layer by layer and global (one threshold), 0-80% sparsity, top-1
  straight after pruning and after fine-tuning (`qconvert prune-sweep`); next to it
  `torch.nn.utils.prune.global_unstructured` (L1) on the torch VGG itself, fine-tuned with the same data,
  epochs, batch and Adam rate (torch keeps its BatchNorm layers; qconvert prunes the folded IR and
  fine-tunes each Conv-ReLU under a BatchNorm of its own on batch statistics, refolded afterwards).
- The VGG curve and the UNet again with `--prune-magnitudes trained` (`--also-magnitudes`): the weights
  ranked as trained, the folded BatchNorm's factors divided out (as torch.nn.utils.prune and tfmot see
  them), where the default ranks the IR's BatchNorm-folded weights as they are.
- The UNet without fine-tuning (`qconvert prune-sweep`, layer and global, 0-80%), for each magnitudes.
- VGG at 80%: iterative (4 steps on the cubic schedule, fine-tuned between steps and after the last)
  against one-shot + fine-tuning, with the same epochs per fine-tuning and with the same epochs in all.
- Every VGG figure is the mean over `--seeds` (each seed draws the data order of both sides' fine-tuning,
  the same order on both); one seed's figure moves by whole samples of the 359-sample evaluation set (0.28
  points each), so single-seed comparisons of curves this close are coin flips.
- VGG channel pruning at 50% (`--prune-method channel`), fine-tuned: parameters, MACs, top-1, and the
  latency of each pruned artifact against the unpruned one in the same runtime, measured side by side in
  child processes taking turns (bench.alternating).
- Keras UNet at 80% global + fine-tuning, to tflite-uint8: Dice, raw and zip-compressed sizes (deflate
  level 9, tfmot's measure) against the zip-compressed float .h5; next to it tfmot `prune_low_magnitude`
  (PolynomialDecay 0 -> 80% over the first three quarters of the epochs, masks updated once an epoch)
  fine-tuned with the same data, epochs, batch and Adam rate, stripped and converted by the TFLite
  converter to uint8 from the same calibration set.

Each side runs in a fresh child process, so TensorFlow's and torch's thread pools never meet.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.machine import describe

WORK = Path("build/bench/prune")
SPARSITIES = (0.0, 0.2, 0.4, 0.6, 0.8)
ITERATIVE_STEPS = 4
CHANNEL_TARGETS = ("onnx-fp32", "tflite-fp32", "torch-fp32", "onnx-qdq", "tflite-int8", "torch-int8")


# -- children ------------------------------------------------------------------------------------------


def run_sweep(request: dict) -> dict:
    """qconvert prune-sweep on the VGG: layer and global, each point fine-tuned; and the iterative run."""
    from qconvert.pipeline.options import EvalOptions, PruneOptions, SourceOptions, TrainingOptions
    from qconvert.pipeline.prune_sweep import prune_sweep
    from qconvert.prune.method import parse_method

    models, out = Path(request["models"]), Path(request["out"])
    training = TrainingOptions(str(models / "vgg_train.npz"), finetune=True, epochs=request["epochs"],
                               lr=request["lr"], train_batch=request["batch"])
    evaluation = EvalOptions(str(models / "vgg_eval.npz"))
    began = time.perf_counter()
    seed, magnitudes = request.get("seed", 0), request.get("magnitudes", "folded")
    curve = prune_sweep(str(models / "vgg.pt2"), SourceOptions(), evaluation,
                        [parse_method("layer"), parse_method("global")], list(SPARSITIES),
                        PruneOptions(magnitudes=magnitudes), training,
                        out_dir=out / "curve", threads=request["threads"], seed=seed)
    curve_s = time.perf_counter() - began
    if request.get("curve_only"):
        return {"curve": curve.to_dict(), "curve_s": curve_s}
    iterative = prune_sweep(str(models / "vgg.pt2"), SourceOptions(), evaluation, [parse_method("global")], [0.8],
                            PruneOptions(steps=ITERATIVE_STEPS), training, out_dir=out / "iterative",
                            threads=request["threads"], seed=seed)
    long_training = TrainingOptions(training.train_path, finetune=True, epochs=request["epochs"] * ITERATIVE_STEPS,
                                    lr=request["lr"], train_batch=request["batch"])
    one_shot_long = prune_sweep(str(models / "vgg.pt2"), SourceOptions(), evaluation, [parse_method("global")], [0.8],
                                PruneOptions(), long_training, out_dir=out / "one_shot_long",
                                threads=request["threads"], seed=seed)
    return {"curve": curve.to_dict(), "curve_s": curve_s, "iterative": iterative.to_dict(),
            "one_shot_long": one_shot_long.to_dict()}


def run_torch_prune(request: dict) -> dict:
    """torch.nn.utils.prune.global_unstructured (L1) on the torch VGG at each sparsity, fine-tuned with Adam
    at the same rate, batch, epochs and data order rule as qconvert's fine-tuning."""
    import torch
    from torch.nn.utils import prune

    from models.vgg_torch import build

    models = Path(request["models"])
    torch.set_num_threads(request["threads"])
    with np.load(models / "vgg_train.npz") as data:
        x_train, y_train = torch.from_numpy(data["x"]), torch.from_numpy(data["labels"])
    with np.load(models / "vgg_eval.npz") as data:
        x_eval, y_eval = torch.from_numpy(data["x"]), data["labels"]

    def top1(model) -> float:
        model.eval()
        with torch.no_grad():
            predicted = torch.cat([model(x_eval[i:i + 128]) for i in range(0, len(x_eval), 128)]).argmax(1).numpy()
        return float(np.mean(predicted == y_eval) * 100)

    points, seed = [], request.get("seed", 0)
    for sparsity in SPARSITIES:
        torch.manual_seed(seed)
        model = build()
        model.load_state_dict(torch.load(models / "vgg_weights.pt", weights_only=True))
        layers = [(m, "weight") for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        if sparsity > 0:
            prune.global_unstructured(layers, pruning_method=prune.L1Unstructured, amount=sparsity)
        pruned = top1(model)
        began = time.perf_counter()
        if sparsity > 0:
            optimizer = torch.optim.Adam(model.parameters(), lr=request["lr"])
            order = torch.Generator().manual_seed(seed)
            for _ in range(request["epochs"]):
                model.train()
                for index in torch.randperm(len(x_train), generator=order).split(request["batch"]):
                    loss = torch.nn.functional.cross_entropy(model(x_train[index]), y_train[index])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
        zeros = sum(int((m.weight == 0).sum()) for m, _ in layers) / sum(m.weight.numel() for m, _ in layers)
        points.append({"sparsity": sparsity, "achieved": zeros, "pruned": pruned, "finetuned": top1(model),
                       "seconds": time.perf_counter() - began})
    return {"points": points}


def run_channel(request: dict) -> dict:
    """The VGG to the float and int8 targets, unpruned and channel-pruned at 50% + fine-tuned."""
    from qconvert.api import convert

    models, out = Path(request["models"]), Path(request["out"])
    common = dict(calib=str(models / "vgg_calib.npz"), eval_path=str(models / "vgg_eval.npz"), batch=32,
                  threads=request["threads"], runs=3)
    facts = {}
    for name, extra in (("unpruned", {}),
                        ("channel", dict(prune=0.5, prune_method="channel", finetune=True,
                                         train=str(models / "vgg_train.npz"), epochs=request["channel_epochs"],
                                         lr=request["channel_lr"], train_batch=request["batch"]))):
        began = time.perf_counter()
        result = convert(str(models / "vgg.pt2"), list(CHANNEL_TARGETS), out_dir=out / name, **common, **extra)
        facts[name] = {"wall_s": time.perf_counter() - began, "result": result.to_dict()}
    return facts


def run_channel_latency(request: dict) -> dict:
    """Each pruned artifact against its unpruned twin, alternated in child processes, batch 1 and 32."""
    from bench.alternating import alternate
    from qconvert.backends.measure import RunSettings
    from qconvert.backends.targets import all_targets

    rows = request["rows"]
    with np.load(Path(request["models"]) / "vgg_eval.npz") as data:
        x = data["x"]
    latency = {}
    for target in CHANNEL_TARGETS:
        opener = all_targets()[target].opener
        files = {side: (opener, rows[side][target]["path"], rows[side][target].get("quantization") or {})
                 for side in ("unpruned", "channel")}
        latency[target] = {}
        for batch in (1, 32):
            best, _ = alternate(files, {"x": x[:4]}, {"x": x[:batch]},
                                RunSettings(threads=request["threads"], runs=request["runs"]), rounds=3)
            latency[target][batch] = best
    return latency


def run_unet_ours(request: dict) -> dict:
    from qconvert.api import convert

    models, out = Path(request["models"]), Path(request["out"])
    began = time.perf_counter()
    result = convert(str(models / "unet.h5"), ["tflite-fp32", "tflite-uint8"], out_dir=out,
                     calib=str(models / "unet_calib.npz"), eval_path=str(models / "unet_eval.npz"),
                     threads=request["threads"], runs=3, prune=0.8, prune_method="global",
                     prune_steps=request["steps"], finetune=True, train=str(models / "unet_train.npz"),
                     epochs=request["epochs"], lr=request["lr"], train_batch=request["batch"],
                     prune_magnitudes=request.get("magnitudes", "folded"))
    return {"wall_s": time.perf_counter() - began, "result": result.to_dict()}


def run_unet_one_shot(request: dict) -> dict:
    """qconvert prune-sweep on the UNet without fine-tuning, layer and global, for each --prune-magnitudes."""
    from qconvert.pipeline.options import EvalOptions, PruneOptions, SourceOptions, TrainingOptions
    from qconvert.pipeline.prune_sweep import prune_sweep
    from qconvert.prune.method import parse_method

    models, out = Path(request["models"]), Path(request["out"])
    return {magnitudes: prune_sweep(str(models / "unet.h5"), SourceOptions(), EvalOptions(str(models / "unet_eval.npz")),
                                    [parse_method("layer"), parse_method("global")], list(SPARSITIES),
                                    PruneOptions(magnitudes=magnitudes), TrainingOptions(),
                                    out_dir=out / magnitudes, threads=request["threads"]).to_dict()
            for magnitudes in request["magnitudes"]}


def run_unet_tfmot(request: dict) -> dict:
    """tfmot prune_low_magnitude on the UNet (PolynomialDecay 0 -> 80% over the fine-tuning), stripped,
    converted to full-integer uint8 TFLite from the calibration set."""
    from bench.qat_vs_tfmot import keras_to_tflite, tf_keras_side

    x, y, calib = tf_keras_side(request)
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    from models.unet_keras import _bce_dice_loss

    models, out = Path(request["models"]), Path(request["out"])
    began = time.perf_counter()
    # Masks updated once an epoch, 80% reached at three quarters of the training, the rest to recover: tfmot's
    # defaults (every 100 steps, ending at the last step) prune the 6-step-epoch UNet in one jump at step 100
    # and leave it 20 steps (measured: Dice 0.56).
    per_epoch = -(-len(x) // request["batch"])
    schedule = tfmot.sparsity.keras.PolynomialDecay(initial_sparsity=0.0, final_sparsity=0.8, begin_step=0,
                                                    end_step=per_epoch * request["epochs"] * 3 // 4,
                                                    frequency=per_epoch)
    model = tfmot.sparsity.keras.prune_low_magnitude(keras.models.load_model(models / "unet.h5", compile=False),
                                                     pruning_schedule=schedule)
    model.compile(optimizer=keras.optimizers.Adam(request["lr"]), loss=_bce_dice_loss)
    model.fit(x, y, batch_size=request["batch"], epochs=request["epochs"], shuffle=True, verbose=0,
              callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(model)
    trained = time.perf_counter() - began
    weights = [w for layer in stripped.layers for w in layer.get_weights()[:1] if w.ndim > 1]
    sparsity = sum(int((w == 0).sum()) for w in weights) / sum(w.size for w in weights)
    files = {f"tflite-{name}": keras_to_tflite(stripped, out / f"unet.tfmot.{name}.tflite", calib, dtype)
             for name, dtype in (("fp32", None), ("uint8", tf.uint8))}
    return {"train_s": trained, "sparsity": sparsity, "files": files}


CHILDREN = {"sweep": run_sweep, "torch_prune": run_torch_prune, "channel": run_channel,
            "channel_latency": run_channel_latency, "unet_ours": run_unet_ours, "unet_tfmot": run_unet_tfmot,
            "unet_one_shot": run_unet_one_shot}


def child(side: str, request: dict, reuse: bool = False) -> dict:
    """`side` run in a fresh interpreter; with `reuse`, the facts an earlier run left in its folder."""
    from qconvert.backends.measure import thread_environment

    out = Path(request["out"])
    if reuse and (out / "facts.json").exists():
        return json.loads((out / "facts.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    (out / "request.json").write_text(json.dumps({**request, "side": side}))
    subprocess.run([sys.executable, "-m", "bench.prune", "--child", str(out / "request.json")],
                   env={**thread_environment(request["threads"]), "PYTHONPATH": "."}, check=True)
    return json.loads((out / "facts.json").read_text())


# -- rendering -----------------------------------------------------------------------------------------


def _mean(values) -> float:
    return float(np.mean(list(values)))


def _at_least(a: float, b: float) -> bool:
    """a >= b for means of top-1 percentages: equal sample counts summed in another order are equal."""
    return round(a, 6) >= round(b, 6)


def _finetuned(result: dict, method: str, sparsity: float) -> float:
    metric = result["metric"]
    return next(p for p in result["points"] if p["method"] == method and p["sparsity"] == sparsity)["finetuned"][metric]


def _curve_table(sweeps: list[dict], torch_runs: list[list[dict]]) -> list[str]:
    """Means over the seeds of each column; per seed where they differ."""
    def cell(values: list[float]) -> str:
        shown = f"{_mean(values):.2f}"
        return shown if len(set(values)) == 1 else f"{shown} ({' / '.join(f'{v:.2f}' for v in values)})"

    lines = ["| sparsity | layer | layer + FT | global | global + FT | torch global | torch global + FT | "
             "global ≥ layer (FT) |", "|---|---|---|---|---|---|---|---|"]
    for s in SPARSITIES:
        columns = []
        for method in ("layer", "global"):
            points = [next(p for p in sweep["curve"]["points"] if p["method"] == method and p["sparsity"] == s)
                      for sweep in sweeps]
            metric = sweeps[0]["curve"]["metric"]
            columns += [[p["metric"][metric] for p in points], [p["finetuned"][metric] for p in points]]
        theirs = [next(p for p in run if p["sparsity"] == s) for run in torch_runs]
        columns += [[p["pruned"] for p in theirs], [p["finetuned"] for p in theirs]]
        verdict = "yes" if _at_least(_mean(columns[3]), _mean(columns[1])) else "NO"
        lines.append(f"| {s:.1f} | " + " | ".join(cell(c) for c in columns) + f" | {verdict} |")
    return lines


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _vgg_section(options, sweeps: list[dict], torch_runs: list[list[dict]], seeds: list[int]) -> list[str]:
    curve, metric = sweeps[0]["curve"], sweeps[0]["curve"]["metric"]
    one_shot = _mean(_finetuned(sweep["curve"], "global", 0.8) for sweep in sweeps)
    long = _mean(_finetuned(sweep["one_shot_long"], "global", 0.8) for sweep in sweeps)
    iterative = _mean(_finetuned(sweep["iterative"], "global", 0.8) for sweep in sweeps)
    total = options.epochs * ITERATIVE_STEPS
    ours = {s: _mean(_finetuned(sweep["curve"], "global", s) for sweep in sweeps) for s in SPARSITIES}
    layer = {s: _mean(_finetuned(sweep["curve"], "layer", s) for sweep in sweeps) for s in SPARSITIES}
    theirs = {s: _mean(next(p for p in run if p["sparsity"] == s)["finetuned"] for run in torch_runs)
              for s in SPARSITIES}
    return [f"## VGG: top-1 against sparsity ({options.epochs} epochs of fine-tuning per point, batch "
            f"{options.batch}, Adam {options.lr:g}; mean of seeds {', '.join(map(str, seeds))})", "",
            f"Unpruned float IR: {curve['reference'][metric]:.2f}.", "", *_curve_table(sweeps, torch_runs), "",
            f"At 80% global: one-shot + fine-tuning ({options.epochs} epochs) {one_shot:.2f}; one-shot + {total} "
            f"epochs {long:.2f}; iterative, {ITERATIVE_STEPS} steps on the cubic schedule with {options.epochs} "
            f"epochs after each ({total} in all) {iterative:.2f}.",
            f"- global + FT ≥ layer + FT at every sparsity: "
            f"{_met(all(_at_least(ours[s], layer[s]) for s in SPARSITIES))}",
            f"- iterative ≥ one-shot + fine-tuning: {_met(_at_least(iterative, one_shot))} (same total epochs: "
            f"{_met(_at_least(iterative, long))})",
            f"- qconvert global + FT ≥ torch.nn.utils.prune global + FT at every sparsity: "
            f"{_met(all(_at_least(ours[s], theirs[s]) for s in SPARSITIES))}", ""]


def _vgg_also_section(magnitudes: str, sweeps: list[dict], torch_runs: list[list[dict]]) -> list[str]:
    ours = {s: _mean(_finetuned(sweep["curve"], "global", s) for sweep in sweeps) for s in SPARSITIES}
    layer = {s: _mean(_finetuned(sweep["curve"], "layer", s) for sweep in sweeps) for s in SPARSITIES}
    theirs = {s: _mean(next(p for p in run if p["sparsity"] == s)["finetuned"] for run in torch_runs)
              for s in SPARSITIES}
    return [f"### The same curve with `--prune-magnitudes {magnitudes}`", "",
            *_curve_table(sweeps, torch_runs), "",
            f"- global + FT ≥ layer + FT at every sparsity: "
            f"{_met(all(_at_least(ours[s], layer[s]) for s in SPARSITIES))}",
            f"- global + FT ≥ torch.nn.utils.prune global + FT at every sparsity: "
            f"{_met(all(_at_least(ours[s], theirs[s]) for s in SPARSITIES))}", ""]


def _channel_section(options, channel: dict, latency: dict) -> list[str]:
    rows = {side: {r["target"]: r for r in channel[side]["result"]["rows"]} for side in ("unpruned", "channel")}
    pruning = channel["channel"]["result"]["pruning"]
    step = pruning["steps"][-1]
    params, macs = step["params"] / pruning["params_before"], step["macs"] / pruning["macs_before"]
    source = rows["unpruned"]["source"]["metrics"]["top1"]
    tuned = rows["channel"]["pruned+finetuned"]["metrics"]["top1"]
    lines = [f"## VGG channel pruning at 50%, fine-tuned {options.channel_epochs} epochs at Adam "
             f"{options.channel_lr:g}", "",
             f"- parameters {step['params']:,} of {pruning['params_before']:,}: {params:.3f}× (acceptance ≤ 0.30×: "
             f"{_met(params <= 0.30)}); MACs per sample {step['macs']:,} of {pruning['macs_before']:,}: {macs:.3f}×",
             f"- top-1: float {source:.2f}, pruned + fine-tuned {tuned:.2f} (acceptance within 1.5 points: "
             f"{_met(tuned >= source - 1.5)}); groups left alone: {pruning['frozen'] or 'none'}", "",
             "Latency: best median ms of 3 alternated rounds, each artifact in its own child process.", "",
             "| target | top-1 pruned | b1 unpruned | b1 pruned | × | b32 unpruned | b32 pruned | × |",
             "|---|---|---|---|---|---|---|---|"]
    for target in CHANNEL_TARGETS:
        cells = [f"{rows['channel'][target]['metrics']['top1']:.2f}"]
        for batch in ("1", "32"):
            pair = latency[target][batch]
            cells += [f"{pair['unpruned']:.2f}", f"{pair['channel']:.2f}", f"{pair['channel'] / pair['unpruned']:.2f}"]
        lines.append(f"| {target} | " + " | ".join(cells) + " |")
    return lines + [""]


def _unet_section(options, ours: dict, theirs: dict, also: dict) -> list[str]:
    from bench.qat_vs_tfmot import tflite_dice
    from qconvert.report.sizes import zipped_bytes

    rows = {r["target"]: r for r in ours["result"]["rows"]}
    h5 = Path(options.models) / "unet.h5"
    h5_zip, ours_file, their_file = zipped_bytes(h5), rows["tflite-uint8"]["path"], theirs["files"]["tflite-uint8"]
    ours_zip, their_zip = zipped_bytes(ours_file), zipped_bytes(their_file)
    source_dice, ours_dice = rows["source"]["metrics"]["dice"], rows["tflite-uint8"]["metrics"]["dice"]
    with np.load(Path(options.models) / "unet_eval.npz") as data:
        their_dice = tflite_dice(their_file, data["input"], data["labels"], options.threads)
    size = lambda path: Path(path).stat().st_size  # noqa: E731
    also_rows, also_lines = [], []
    for magnitudes, facts in also.items():
        row = {r["target"]: r for r in facts["result"]["rows"]}["tflite-uint8"]
        dice, zipped = row["metrics"]["dice"], zipped_bytes(row["path"])
        also_rows.append(f"| qconvert tflite-uint8, `--prune-magnitudes {magnitudes}` | {dice:.4f} | "
                         f"{size(row['path']):,} | {zipped:,} | {zipped / h5_zip:.3f} |")
        also_lines.append(f"- with `--prune-magnitudes {magnitudes}`: Dice {dice - source_dice:+.4f} from float, zip "
                          f"{zipped / h5_zip:.3f}× the float .h5's; against tfmot Dice {_met(dice >= their_dice)}, "
                          f"zip bytes {_met(zipped <= their_zip)}; the run {facts['wall_s']:.0f} s")
    return [f"## Keras UNet: 80% global + fine-tuning ({options.unet_epochs} epochs, batch {options.batch}, "
            f"Adam {options.lr:g}), to tflite-uint8", "",
            "| model | Dice | raw bytes | zip bytes | zip × float .h5 zip |", "|---|---|---|---|---|",
            f"| float .h5 (source) | {source_dice:.4f} | {size(h5):,} | {h5_zip:,} | 1.000 |",
            f"| qconvert tflite-uint8 | {ours_dice:.4f} | {size(ours_file):,} | {ours_zip:,} | "
            f"{ours_zip / h5_zip:.3f} |", *also_rows,
            f"| tfmot prune_low_magnitude tflite-uint8 | {their_dice:.4f} | {size(their_file):,} | {their_zip:,} | "
            f"{their_zip / h5_zip:.3f} |", "",
            f"- Dice within 0.01 of float: {_met(ours_dice >= source_dice - 0.01)} ({ours_dice - source_dice:+.4f}); "
            f"zip ≤ 0.10× the float .h5's: {_met(ours_zip <= 0.10 * h5_zip)} ({ours_zip / h5_zip:.3f}×)",
            f"- against tfmot: Dice {ours_dice:.4f} vs {their_dice:.4f} ({_met(ours_dice >= their_dice)}), zip bytes "
            f"{ours_zip:,} vs {their_zip:,} ({_met(ours_zip <= their_zip)}); tfmot's weight sparsity "
            f"{theirs['sparsity']:.3f}, its fit {theirs['train_s']:.0f} s; the qconvert run {ours['wall_s']:.0f} s",
            *also_lines, ""]


def _unet_one_shot_section(sweeps: dict) -> list[str]:
    lines = ["### Keras UNet without fine-tuning: Dice against sparsity by `--prune-magnitudes`", "",
             "| magnitudes | method | " + " | ".join(f"{s:.1f}" for s in SPARSITIES) + " |",
             "|---|---|" + "---|" * len(SPARSITIES)]
    for magnitudes, sweep in sweeps.items():
        for method in ("layer", "global"):
            cells = [next(p for p in sweep["points"] if p["method"] == method and p["sparsity"] == s)["metric"]
                     [sweep["metric"]] for s in SPARSITIES]
            lines.append(f"| {magnitudes} | {method} | " + " | ".join(f"{c:.4f}" for c in cells) + " |")
    return lines + [""]


def render(options, began: float, facts: dict) -> None:
    from qconvert.fileio import atomic_path

    body = []
    if "sweep" in facts and "torch_prune" in facts:
        torch_runs = [run["points"] for run in facts["torch_prune"]]
        body += _vgg_section(options, facts["sweep"], torch_runs, _seeds(options))
        for magnitudes, sweeps in facts.get("sweep_also", {}).items():
            body += _vgg_also_section(magnitudes, sweeps, torch_runs)
    if "channel_latency" in facts:
        body += _channel_section(options, facts["channel"], facts["channel_latency"])
    if "unet_tfmot" in facts:
        body += _unet_section(options, facts["unet_ours"], facts["unet_tfmot"], facts.get("unet_ours_also", {}))
    if "unet_one_shot" in facts:
        body += _unet_one_shot_section(facts["unet_one_shot"])
    header = (f"# Pruning on the IR next to tfmot and torch.nn.utils.prune\n\n- date: "
              f"{datetime.datetime.now().isoformat(timespec='seconds')}\n- machine: {describe()}\n"
              f"- command: `python -m bench.prune {' '.join(sys.argv[1:])}` (part of `make bench`); "
              f"{time.perf_counter() - began:.0f} s\n\n")
    with atomic_path(Path(options.out)) as tmp:
        tmp.write_text(header + __doc__.split("\n\n", 1)[1] + "\n" + "\n".join(body) + "\n")
    print(f"wrote {options.out}", flush=True)


def _seeds(options) -> list[int]:
    return [int(seed) for seed in options.seeds.split(",")]


def _also(options) -> list[str]:
    return [m for m in options.also_magnitudes.split(",") if m.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="build/models")
    parser.add_argument("--out", default="bench/PRUNE.md")
    parser.add_argument("--epochs", type=int, default=3, help="VGG fine-tuning epochs per point")
    parser.add_argument("--unet-epochs", type=int, default=20, help="UNet fine-tuning epochs, both sides")
    parser.add_argument("--unet-steps", type=int, default=1, help="qconvert's pruning steps on the UNet")
    parser.add_argument("--channel-epochs", type=int, default=12,
                        help="VGG fine-tuning epochs after channel pruning (whole filters gone: it starts near chance)")
    parser.add_argument("--channel-lr", type=float, default=1e-4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30, help="timed runs per artifact and round")
    parser.add_argument("--parts", default="vgg,channel,unet", help="vgg, channel, unet")
    parser.add_argument("--seeds", default="0,1,2", help="VGG curve: the fine-tuning seeds its figures are the "
                                                          "mean of")
    parser.add_argument("--also-magnitudes", default="trained", help="the VGG curve and the UNet also with these "
                        "--prune-magnitudes (the default, folded, carries the acceptance lines); '' for none")
    parser.add_argument("--reuse", action="store_true", help="take the facts of parts an earlier run finished "
                        "from build/bench/prune instead of running them again")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        request = json.loads(Path(options.child).read_text())
        (Path(request["out"]) / "facts.json").write_text(json.dumps(CHILDREN[request["side"]](request), default=float))
        return
    began = time.perf_counter()
    base = {"models": options.models, "epochs": options.epochs, "batch": options.batch, "lr": options.lr,
            "threads": options.threads, "runs": options.runs}
    parts, facts = options.parts.split(","), {}
    if "unet" in parts:
        unet = {**base, "epochs": options.unet_epochs, "steps": options.unet_steps}
        facts["unet_ours"] = child("unet_ours", {**unet, "out": str(WORK / "unet_ours")}, options.reuse)
        facts["unet_one_shot"] = child("unet_one_shot", {**base, "magnitudes": ["folded", *_also(options)],
                                                          "out": str(WORK / "unet_one_shot")}, options.reuse)
        facts["unet_ours_also"] = {m: child("unet_ours", {**unet, "magnitudes": m, "out": str(WORK / f"unet_ours_{m}")},
                                            options.reuse) for m in _also(options)}
        facts["unet_tfmot"] = child("unet_tfmot", {**unet, "out": str(WORK / "unet_tfmot")}, options.reuse)
        render(options, began, facts)
    if "channel" in parts:
        facts["channel"] = child("channel", {**base, "channel_epochs": options.channel_epochs,
                                             "channel_lr": options.channel_lr, "out": str(WORK / "channel")},
                                 options.reuse)
        rows = {side: {r["target"]: r for r in facts["channel"][side]["result"]["rows"]}
                for side in ("unpruned", "channel")}
        facts["channel_latency"] = child("channel_latency", {**base, "rows": rows, "out": str(WORK / "latency")},
                                         options.reuse)
        render(options, began, facts)
    if "vgg" in parts:
        facts["torch_prune"], facts["sweep"] = [], []
        for seed in _seeds(options):
            suffix = "" if seed == 0 else f"_seed{seed}"
            seeded = {**base, "seed": seed}
            facts["torch_prune"].append(child("torch_prune", {**seeded, "out": str(WORK / f"torch_prune{suffix}")},
                                              options.reuse))
            facts["sweep"].append(child("sweep", {**seeded, "out": str(WORK / f"sweep{suffix}")}, options.reuse))
        facts["sweep_also"] = {
            m: [child("sweep", {**base, "seed": seed, "magnitudes": m, "curve_only": True,
                                "out": str(WORK / f"sweep{'' if seed == 0 else f'_seed{seed}'}_{m}")}, options.reuse)
                for seed in _seeds(options)] for m in _also(options)}
        render(options, began, facts)


if __name__ == "__main__":
    main()
