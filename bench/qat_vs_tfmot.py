"""Part of `make bench`: qconvert's QAT on the IR next to tfmot's quantize_model QAT, written to bench/QAT.md.

The Keras UNet reference (models.build: unet.h5 and its train, calibration and evaluation sets), trained
by both sides on the same NAME_train.npz images and masks, for the same epochs, batch and Adam learning
rate, from the same calibration set:

- tfmot: the tf_keras model loaded from unet.h5, `tfmot.quantization.keras.quantize_model`, compiled with
  the reference's own BCE + soft Dice loss (models/unet_keras.py, the loss family qconvert picks for 0/1
  masks) and Adam, `fit` (shuffled, seeded, TensorFlow op determinism on, as qconvert's training is
  deterministic), then `tf.lite.TFLiteConverter` with Optimize.DEFAULT, the calibration set as the
  representative dataset, and int8 and uint8 input/output.
- qconvert: `convert(unet.h5, [tflite-int8, tflite-uint8], qat=True, ...)`: the QDQ IR trained in torch
  (qconvert/train), written back, lowered to TFLite.

Each side runs in a fresh child process, the sides taking turns (ours, tfmot, ours, tfmot...), both with
the same seed in each round (round r: seed r, which draws qconvert's data order and tfmot's weights of the
quantizers and data order) and the same thread count (torch's threads; TensorFlow's intra-op threads, one inter-op thread). Per-epoch
training seconds are the training steps alone (qconvert: EpochRecord.seconds; tfmot: a Keras callback
around each epoch of `fit`); the ratio uses the median epoch of all rounds of each side (tfmot's first
epoch also traces its graph). Dice: every .tflite on the evaluation set in the same LiteRT interpreter loop
(qconvert.report.accuracy's Dice, threshold 0.5); the QAT rows are the mean over the rounds' seeds, each
seed's Dice listed below, and the acceptance compares the means. Also the wall times of whole qconvert runs: plain PTQ,
`--adaround` and `--qat`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.machine import describe

WORK = Path("build/bench/qat")
EVAL_BATCH = 16
HEAP_STEPS = 3  # QAT steps per side in the kept_heap comparison


def run_ours(request: dict) -> dict:
    """One qconvert run (QAT, AdaRound or plain PTQ) in this process; its facts."""
    from qconvert.api import convert

    models, out = Path(request["models"]), Path(request["out"])
    kind = request["kind"]
    began = time.perf_counter()
    result = convert(str(models / "unet.h5"), ["tflite-int8", "tflite-uint8"], out_dir=out,
                     calib=str(models / "unet_calib.npz"), eval_path=str(models / "unet_eval.npz"),
                     threads=request["threads"], runs=request["runs"], seed=request.get("seed", 0),
                     qat=kind == "qat", adaround=kind == "adaround",
                     train=str(models / "unet_train.npz") if kind == "qat" else None,
                     epochs=request["epochs"], lr=request["lr"], train_batch=request["batch"])
    wall = time.perf_counter() - began
    facts = {"wall_s": wall, "files": {t: result.row(t).path for t in ("tflite-int8", "tflite-uint8")},
             "row_dice": {t: (result.row(t).metrics or {}).get("dice") for t in ("tflite-int8", "tflite-uint8")},
             "source_dice": (result.row("source").metrics or {}).get("dice")}
    for run in result.training:
        facts[run.stage] = {"seconds": run.seconds, "best_epoch": run.best_epoch, "before": run.before,
                            "after": run.after, "epochs": run.epochs}
    return facts


def run_heap(request: dict) -> dict:
    """CPU seconds and page faults of one QAT step (batch --batch) with and without
    qconvert.train.loop.kept_heap, alternated in one process."""
    import resource

    import torch

    from qconvert.converters import load_source
    from qconvert.passes import cleanup, prepare_for_int8
    from qconvert.quant.calibrate import calibrate
    from qconvert.quant.config import QuantConfig
    from qconvert.quant.static import quantize_with_ranges
    from qconvert.train.fake_quant import qat_program
    from qconvert.train.loop import TrainOptions, deterministic, kept_heap
    from qconvert.train.losses import choose_loss

    models = Path(request["models"])
    prepared = prepare_for_int8(cleanup(load_source(str(models / "unet.h5")).ir))
    with np.load(models / "unet_calib.npz") as data:
        calib = {"input": data["input"]}
    qdq = quantize_with_ranges(prepared, calibrate(prepared, calib, QuantConfig()), QuantConfig())
    program, loss = qat_program(qdq, prepared), choose_loss(qdq, "dice")
    with np.load(models / "unet_train.npz") as data:
        x, y = (torch.from_numpy(data[k][:request["batch"]]) for k in ("input", "labels"))
    seconds, faults = {"default": [], "kept_heap": []}, {"default": [], "kept_heap": []}
    with deterministic(TrainOptions(threads=request["threads"])):
        optimizer = torch.optim.Adam(program.parameter_groups(request["lr"]))

        def step():
            value = loss(program({"input": x})[0], y)
            optimizer.zero_grad()
            value.backward()
            optimizer.step()

        step()
        for index in range(2 * HEAP_STEPS):
            side = "kept_heap" if index % 2 else "default"
            began, flt = time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            if side == "kept_heap":
                with kept_heap():
                    step()
            else:
                step()
            seconds[side].append(time.process_time() - began)
            faults[side].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - flt)
    return {"seconds": seconds, "faults": faults}


def tf_keras_side(request: dict):
    """TensorFlow set up for a tfmot side as qconvert's training is: the request's threads (one inter-op
    thread), its seed, op determinism; the UNet's training images, masks and calibration images."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    import tf_keras as keras

    models = Path(request["models"])
    tf.config.threading.set_intra_op_parallelism_threads(request["threads"])
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(request.get("seed", 0))
    tf.config.experimental.enable_op_determinism()
    with np.load(models / "unet_train.npz") as data:
        x, y = data["input"], data["labels"]
    with np.load(models / "unet_calib.npz") as data:
        calib = data["input"]
    return x, y, calib


def keras_to_tflite(model, path: Path, calib: np.ndarray, dtype=None) -> str:
    """`model` through the TFLite converter into `path`: float without `dtype`, else full integer from the
    calibration images with `dtype` (tf.int8 or tf.uint8) inputs and outputs."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if dtype is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
        converter.inference_input_type = converter.inference_output_type = dtype
    path.write_bytes(converter.convert())
    return str(path)


def run_tfmot(request: dict) -> dict:
    """tfmot quantize_model QAT of the reference in this process; per-epoch seconds and two .tflite files."""
    x, y, calib = tf_keras_side(request)
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    from models.unet_keras import _bce_dice_loss

    models, out = Path(request["models"]), Path(request["out"])

    began = time.perf_counter()
    model = tfmot.quantization.keras.quantize_model(keras.models.load_model(models / "unet.h5", compile=False))
    model.compile(optimizer=keras.optimizers.Adam(request["lr"]), loss=_bce_dice_loss)

    class EpochTimes(keras.callbacks.Callback):
        seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.began = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.began)

    times = EpochTimes()
    history = model.fit(x, y, batch_size=request["batch"], epochs=request["epochs"], shuffle=True, verbose=0,
                        callbacks=[times])
    trained = time.perf_counter() - began

    files = {f"tflite-{name}": keras_to_tflite(model, out / f"unet.tfmot.{name}.tflite", calib, dtype)
             for name, dtype in (("int8", tf.int8), ("uint8", tf.uint8))}
    return {"epoch_seconds": times.seconds, "loss": [float(v) for v in history.history["loss"]],
            "train_s": trained, "wall_s": time.perf_counter() - began, "files": files}


def child(side: str, request: dict) -> dict:
    """`side` run in a fresh interpreter, so neither side's thread pools or caches meet the other's."""
    from qconvert.backends.measure import thread_environment

    out = Path(request["out"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "request.json").write_text(json.dumps({**request, "side": side}))
    subprocess.run([sys.executable, "-m", "bench.qat_vs_tfmot", "--child", str(out / "request.json")],
                   env={**thread_environment(request["threads"]), "PYTHONPATH": "."}, check=True)
    return json.loads((out / "facts.json").read_text())


def tflite_dice(path: str, images: np.ndarray, labels: np.ndarray, threads: int) -> float:
    """Dice of a .tflite's first output on the evaluation set; quantized I/O by its tensors' own qparams."""
    from ai_edge_litert.interpreter import Interpreter

    from qconvert.report.accuracy import evaluate

    interpreter = Interpreter(model_path=path, num_threads=threads)
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], [EVAL_BATCH, *images.shape[1:]])
    interpreter.allocate_tensors()
    inp, outp = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    parts = []
    for i in range(0, len(images), EVAL_BATCH):
        batch = images[i:i + EVAL_BATCH]
        if inp["dtype"] != np.float32:
            scale, zero = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            batch = np.clip(np.round(batch / scale) + zero, info.min, info.max).astype(inp["dtype"])
        interpreter.set_tensor(inp["index"], batch)
        interpreter.invoke()
        result = interpreter.get_tensor(outp["index"])
        if outp["dtype"] != np.float32:
            scale, zero = outp["quantization"]
            result = (result.astype(np.float32) - zero) * scale
        parts.append(result)
    output = np.concatenate(parts)
    return float(evaluate("dice", output, labels, output)["dice"])


def render(options, began: float, ours: list[dict], theirs: list[dict], ptq: dict, heap: dict,
           rounded: dict | None) -> None:
    """bench/QAT.md from the facts so far (`rounded` None: the AdaRound run has not finished yet)."""
    from qconvert.fileio import atomic_path

    with np.load(Path(options.models) / "unet_eval.npz") as data:
        images, labels = data["input"], data["labels"]
    runs = [("qconvert PTQ", [ptq]), ("qconvert AdaRound", [rounded] if rounded else None),
            ("qconvert QAT", ours), ("tfmot QAT", theirs)]
    targets = ("tflite-int8", "tflite-uint8")
    # (row, target) -> Dice per round (per seed for the QAT rows)
    dice = {(name, target): [tflite_dice(facts["files"][target], images, labels, options.threads) for facts in done]
            for name, done in runs if done is not None for target in targets}
    mean = {key: float(np.mean(values)) for key, values in dice.items()}
    lines = ["| model | tflite-int8 Dice | tflite-uint8 Dice |", "|---|---|---|"]
    for name, done in runs:
        if done is None:
            lines.append(f"| {name} | (not finished) | |")
        else:
            seeds = f" (mean of seeds 0-{len(done) - 1})" if len(done) > 1 else ""
            lines.append(f"| {name}{seeds} | {mean[(name, targets[0])]:.4f} | {mean[(name, targets[1])]:.4f} |")
    by_seed = lambda name: ", ".join(f"{v:.4f}" for v in dice[(name, targets[0])])  # noqa: E731
    our_epochs = [e["seconds"] for run in ours for e in run["qat"]["epochs"] if e["epoch"] > 0]
    their_epochs = [s for run in theirs for s in run["epoch_seconds"]]
    ours_median, theirs_median = float(np.median(our_epochs)), float(np.median(their_epochs))
    ratio = ours_median / theirs_median
    qat = ours[0]["qat"]
    ours_int8, theirs_int8 = mean[("qconvert QAT", "tflite-int8")], mean[("tfmot QAT", "tflite-int8")]
    seconds = lambda values: ", ".join(f"{v:.1f}" for v in values)  # noqa: E731
    heap_s = {k: float(np.median(v)) for k, v in heap["seconds"].items()}
    heap_faults = {k: int(np.median(v)) for k, v in heap["faults"].items()}
    rounded_line = (f"--adaround {rounded['wall_s']:.0f} s (AdaRound stage {rounded['adaround']['seconds']:.0f} s)"
                    if rounded is not None else "--adaround not finished when this was written")
    body = (
        f"## Keras UNet: {options.epochs} epochs, batch {options.batch}, Adam {options.lr:g}, "
        f"{options.threads} threads\n\n" + "\n".join(lines) + "\n\n"
        f"- source (Keras float) Dice on the same set: {ptq['source_dice']:.4f}\n"
        f"- qconvert QAT on the IR, seed 0: Dice before {qat['before'].get('dice', float('nan')):.4f} (PTQ QDQ IR "
        f"in onnxruntime), after {qat['after'].get('dice', float('nan')):.4f}; best epochs by seed "
        f"{', '.join(str(r['qat']['best_epoch']) for r in ours)} of {options.epochs} (kept by --eval; tfmot keeps "
        f"its last)\n"
        f"- tflite-int8 Dice by seed: qconvert {by_seed('qconvert QAT')}; tfmot {by_seed('tfmot QAT')}\n"
        f"- tflite-int8 Dice, mean over seeds: qconvert {ours_int8:.4f} vs tfmot {theirs_int8:.4f} "
        f"({ours_int8 - theirs_int8:+.4f}; acceptance ≥ tfmot's: {'met' if ours_int8 >= theirs_int8 else 'NOT met'})\n"
        f"- training seconds per epoch, median: qconvert {ours_median:.1f} s, tfmot {theirs_median:.1f} s, "
        f"ratio {ratio:.2f}× (acceptance ≤ 1.5×: {'met' if ratio <= 1.5 else 'NOT met'})\n"
        f"  - qconvert epochs by round: "
        f"{'; '.join(seconds(e['seconds'] for e in r['qat']['epochs'] if e['epoch'] > 0) for r in ours)}\n"
        f"  - tfmot epochs by round: {'; '.join(seconds(r['epoch_seconds']) for r in theirs)}\n"
        f"- wall times of whole qconvert runs (load, calibrate, [train], emit two .tflite, measure {options.runs} "
        f"runs each): PTQ {ptq['wall_s']:.0f} s; {rounded_line}; --qat {seconds(r['wall_s'] for r in ours)} s "
        f"(QAT stage {seconds(r['qat']['seconds'] for r in ours)} s)\n"
        f"- tfmot: quantize_model + fit {seconds(r['train_s'] for r in theirs)} s; with the two conversions "
        f"{seconds(r['wall_s'] for r in theirs)} s\n"
        f"- one QAT step (batch {options.batch}), CPU seconds (user + system, median of {HEAP_STEPS}, alternated "
        f"in one process): glibc's default allocator {heap_s['default']:.2f} s ({heap_faults['default']} page "
        f"faults), qconvert.train.loop.kept_heap {heap_s['kept_heap']:.2f} s ({heap_faults['kept_heap']} page "
        f"faults)\n")
    command = (f"python -m bench.qat_vs_tfmot --models {options.models} --out {options.out} --epochs {options.epochs} "
               f"--batch {options.batch} --lr {options.lr:g} --threads {options.threads} --rounds {options.rounds}")
    header = (f"# qconvert QAT next to tfmot quantize_model\n\n- date: "
              f"{datetime.datetime.now().isoformat(timespec='seconds')}\n- machine: {describe()}\n"
              f"- command: `{command}` (part of `make bench`); {time.perf_counter() - began:.0f} s\n\n")
    with atomic_path(Path(options.out)) as tmp:
        tmp.write_text(header + __doc__.split("\n\n", 1)[1] + "\n" + body)
    print(f"wrote {options.out}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="build/models")
    parser.add_argument("--out", default="bench/QAT.md")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4,
                        help="Adam's rate, both sides (the UNet's QAT did better at it than at the --qat default)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2,
                        help="QAT runs per side, alternated; round r trains with seed r on both sides")
    parser.add_argument("--runs", type=int, default=10, help="qconvert's timed inference runs per row")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        request = json.loads(Path(options.child).read_text())
        run = {"tfmot": run_tfmot, "heap": run_heap}.get(request["side"], run_ours)
        (Path(request["out"]) / "facts.json").write_text(json.dumps(run(request), default=float))
        return

    began = time.perf_counter()
    base = {"models": options.models, "epochs": options.epochs, "batch": options.batch, "lr": options.lr,
            "threads": options.threads, "runs": options.runs}
    ours, theirs = [], []
    for round_ in range(options.rounds):
        seeded = {**base, "seed": round_}
        ours.append(child("ours", {**seeded, "kind": "qat", "out": str(WORK / f"ours{round_}")}))
        print(f"round {round_}: qconvert QAT {ours[-1]['wall_s']:.0f} s", flush=True)
        theirs.append(child("tfmot", {**seeded, "out": str(WORK / f"tfmot{round_}")}))
        print(f"round {round_}: tfmot QAT {theirs[-1]['wall_s']:.0f} s", flush=True)
    ptq = child("ours", {**base, "kind": "ptq", "out": str(WORK / "ptq")})
    heap = child("heap", {**base, "out": str(WORK / "heap")})
    render(options, began, ours, theirs, ptq, heap, None)  # AdaRound is the slowest part: results so far first
    rounded = child("ours", {**base, "kind": "adaround", "out": str(WORK / "adaround")})
    render(options, began, ours, theirs, ptq, heap, rounded)


if __name__ == "__main__":
    main()
