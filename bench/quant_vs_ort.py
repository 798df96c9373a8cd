"""Part of `make bench`: qconvert's int8 next to onnxruntime.quantization's, written to bench/QUANT.md.

For the VGG classifier, the residual ResNet and the Keras UNet: the float ONNX (onnx-fp32), qconvert's
onnx-qdq, and `onnxruntime.quantization.quantize_static` (QDQ, per-channel int8 weights, its default
MinMax calibration, after its recommended quant_pre_process) on the same float model with the same
calibration samples, with int8 activations (its default) and with uint8 activations ("u8": the form its
x86 kernels fuse everywhere); each measured in its own child process like every qconvert row (three interleaved
rounds, best median), and again with their runs alternated one by one in one fresh process ("paired", bench/paired_timing.py): this
shared 2-core machine drifts in speed by several times within minutes, and only runs side by side give
ratios that hold. The ratios below use the paired medians. Then every
calibration method on both models (the evidence for the default), the sensitivity analysis and
--max-drop 0.2 on the VGG, and onnx-dynamic on the BERT-style encoder.

Calibration samples (the first 256 of NAME_calib.npz from models.build) come from the models' training
distributions, never from their evaluation sets.
"""

from __future__ import annotations

import argparse
import datetime
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx_ir as ir

from bench.machine import describe
from bench.paired_timing import paired_ms
from qconvert.api import convert, sensitivity
from qconvert.backends.measure import RunSettings, measure_in_child
from qconvert.fileio import atomic_path
from qconvert.quant.config import METHODS, QuantConfig, make_config
from qconvert.report.accuracy import evaluate
from qconvert.report.metrics import sqnr_db

OPENER = "qconvert.backends.onnx.runtime:open_session"
WORK = Path("build/bench/quant")
CALIB_SAMPLES = 256
ROUNDS = 3


@dataclass
class Case:
    name: str
    model: str
    calib: str
    eval: str
    batch: int
    options: dict
    more_eval: str | None = None  # a second, larger evaluation set
    metric: str | None = None  # inferred from the labels when None


def calibration_files(models: Path) -> dict[str, str]:
    """The models' own calibration sets (models.build writes NAME_calib.npz); made here if missing."""
    from models.data import digits_split, shapes_with_masks

    WORK.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, make in [("vgg", lambda: {"x": digits_split()[0][:256]}),
                       ("unet", lambda: {"input": shapes_with_masks(128, size=128, seed=777)[0]})]:
        path = models / f"{name}_calib.npz"
        if not path.exists():
            path = WORK / f"{name}_calib.npz"
            np.savez(path, **make())
        files[name] = str(path)
    return files


MORE_UNET_SEEDS, MORE_UNET_IMAGES = (2001, 2002, 2003, 2004), 256


def more_unet_eval() -> str:
    """1024 more evaluation images and masks for the UNet, from seeds its training, calibration and
    evaluation sets do not use: Dice differences of 1e-4 on 64 images are a few hundred pixels."""
    from models.data import shapes_with_masks

    path = WORK / "unet_eval_more.npz"
    if not path.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        parts = [shapes_with_masks(MORE_UNET_IMAGES, size=128, seed=seed) for seed in MORE_UNET_SEEDS]
        np.savez(path, input=np.concatenate([x for x, _ in parts]), labels=np.concatenate([y for _, y in parts]))
    return str(path)


def ort_quantize_static(float_path: str, calib: str, out: Path, activations: str = "int8") -> Path:
    """`activations` "int8" is quantize_static's default; "uint8" is the form onnxruntime's x86 kernels
    fuse everywhere (with int8 activations its optimizer left 9 of the ResNet's 15 Convs and all its Adds
    float, onnxruntime 1.31: bench/residual_profile.py)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with np.load(calib) as data:
        feeds = {k: data[k][:CALIB_SAMPLES] for k in data.files}  # what convert() calibrates on

    class Reader(CalibrationDataReader):
        def __init__(self):
            count = len(next(iter(feeds.values())))
            self.batches = iter([{k: v[i:i + 32] for k, v in feeds.items()} for i in range(0, count, 32)])

        def get_next(self):
            return next(self.batches, None)

    prepared = out.with_suffix(".pre.onnx")
    quant_pre_process(float_path, str(prepared))
    quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8 if activations == "int8" else QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    return out


def side_by_side(case: Case, threads: int, runs: int) -> tuple[str, dict]:
    out = WORK / case.name
    result = convert(case.model, ["onnx-fp32", "onnx-qdq"], out_dir=out, calib=case.calib,
                     calib_samples=CALIB_SAMPLES, eval_path=case.eval,
                     batch=case.batch, threads=threads, runs=runs, **case.options)
    fp32, ours = result.row("onnx-fp32"), result.row("onnx-qdq")
    ort_path = ort_quantize_static(fp32.path, case.calib, out / f"{case.name}.ort_qdq.onnx")
    ort_u8_path = ort_quantize_static(fp32.path, case.calib, out / f"{case.name}.ort_qdq_u8.onnx", "uint8")

    with np.load(case.eval) as data:
        eval_feeds = {k: data[k] for k in data.files if k != "labels"}
        labels = data["labels"]
    settings = RunSettings(threads=threads, runs=runs)
    timing = {k: v[:case.batch] for k, v in eval_feeds.items()}
    parity = {k: v[:16] for k, v in eval_feeds.items()}
    artifacts = [("onnx-fp32", fp32.path), ("qconvert onnx-qdq", ours.path), ("ORT quantize_static", str(ort_path)),
                 ("ORT quantize_static u8", str(ort_u8_path))]
    measured = measure_rounds(artifacts, parity, timing, settings, eval_feeds)
    paired = paired_ms(dict(artifacts), timing, threads)
    reference = measured["onnx-fp32"].eval_outputs[0]
    rows, facts = [], {}
    for name, m in measured.items():
        if m.status != "ok":
            rows.append(f"| {name} | {m.status}: {m.error} | | | | | |")
            continue
        metrics = evaluate(result.metric, m.eval_outputs[0], labels, reference)
        value = next(iter(metrics.values()))
        size = Path(dict(artifacts)[name]).stat().st_size / 1e6
        facts[name] = {"metric": value, "ms": paired[name], "mb": size}
        rows.append(f"| {name} | {' '.join(f'{k} {v:.4g}' for k, v in metrics.items())} | "
                    f"{sqnr_db(reference, m.eval_outputs[0]):.1f} | {m.median_ms:.2f} | {paired[name]:.2f} | "
                    f"{paired[name] / paired['onnx-fp32']:.2f} | {size:.3f} |")
    if case.more_eval:
        for name, value in _metric_on_more(artifacts, case.more_eval, result.metric, threads).items():
            facts[name]["more"] = value
    table = ("| model | eval metric | SQNR dB vs fp32 | child median ms | paired median ms | paired × fp32 | size MB |"
             "\n|---|---|---|---|---|---|---|\n" + "\n".join(rows))
    return table, facts


def _metric_on_more(artifacts: list[tuple[str, str]], eval_path: str, metric: str, threads: int) -> dict[str, float]:
    """Each artifact's metric on a second evaluation set, run in this process; the first artifact
    (onnx-fp32) is the reference for a cosine metric."""
    from qconvert.ir.inputs import specs_from_ir
    from qconvert.quant.data import load_eval
    from qconvert.quant.evaluate import run_first_output

    models = {name: ir.load(path) for name, path in artifacts}
    feeds, labels = load_eval(eval_path, specs_from_ir(models[artifacts[0][0]]))
    outputs = {name: run_first_output(model, feeds, threads=threads) for name, model in models.items()}
    reference = outputs[artifacts[0][0]]
    return {name: next(iter(evaluate(metric, output, labels, reference).values()))
            for name, output in outputs.items()}


def more_metric_line(facts: dict) -> str:
    ours, ort, fp32 = facts["qconvert onnx-qdq"], facts["ORT quantize_static"], facts["onnx-fp32"]
    return (f"float {fp32['more']:.5f}, qconvert {ours['more']:.5f}, ORT quantize_static {ort['more']:.5f}; "
            f"qconvert vs ORT {ours['more'] - ort['more']:+.4g}")


def measure_rounds(artifacts, parity, timing, settings, eval_feeds=None):
    """Each artifact in its child process, in interleaved rounds so that all see the same machine load;
    each keeps its best round's latencies (a shared 2-core machine only ever adds time)."""
    measured = {}
    for round_ in range(ROUNDS):
        for name, path in artifacts:
            m = measure_in_child(OPENER, path, {}, parity, timing, settings, eval_feeds if round_ == 0 else None)
            if round_ == 0:
                measured[name] = m
            elif m.status == "ok" and measured[name].status == "ok" and m.median_ms < measured[name].median_ms:
                measured[name].latencies_ms = m.latencies_ms
    return measured


def method_table(cases: list[Case], threads: int) -> str:
    from qconvert.converters import load_source
    from qconvert.converters.input_spec import parse_input_shapes
    from qconvert.ir.inputs import specs_from_ir
    from qconvert.passes import cleanup, prepare_for_int8
    from qconvert.quant.calibrate import calibrate
    from qconvert.quant.data import load_calibration, load_eval
    from qconvert.quant.evaluate import Scorer
    from qconvert.quant.static import quantize_with_ranges

    methods = [m if m != "percentile" else "percentile:99.99" for m in METHODS] + ["percentile:99.9"]
    header = "| method | " + " | ".join(f"{c.name} SQNR dB | {c.name} drop" for c in cases) + " |"
    cells: dict[str, list[str]] = {m: [] for m in methods}
    for case in cases:
        options = case.options
        source = load_source(case.model, input_specs=parse_input_shapes(options.get("input_shapes", [])),
                             weights=options.get("weights"), trust_code=options.get("trust_code", False))
        graph = prepare_for_int8(cleanup(source.ir))
        specs = specs_from_ir(graph)
        feeds = load_calibration(case.calib, specs, samples=CALIB_SAMPLES)
        eval_feeds, labels = load_eval(case.eval, specs)
        scorer = Scorer(graph, eval_feeds, labels, case.metric, threads)
        for method in methods:
            config = make_config(method)
            sqnr, drop = scorer.score(quantize_with_ranges(graph, calibrate(graph, feeds, config), config))
            cells[method] += [f"{sqnr:.2f}", f"{drop:.4f}"]
    return "\n".join([header, "|---" * (1 + 2 * len(cases)) + "|"]
                     + [f"| {m} | " + " | ".join(c) + " |" for m, c in cells.items()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="build/models")
    parser.add_argument("--out", default="bench/QUANT.md")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=50)
    options = parser.parse_args()
    models = Path(options.models)
    calib = calibration_files(models)
    vgg_options = {"weights": str(models / "vgg_weights.pt"), "trust_code": True, "input_shapes": ["1,3,32,32"]}
    cases = [
        Case("vgg", "models/vgg_torch.py:build", calib["vgg"], str(models / "vgg_eval.npz"), 32, vgg_options),
        Case("resnet", str(models / "resnet.pt2"), str(models / "resnet_calib.npz"), str(models / "resnet_eval.npz"),
             32, {}),
        Case("unet", str(models / "unet.h5"), calib["unet"], str(models / "unet_eval.npz"), 1, {},
             more_eval=more_unet_eval()),
    ]
    # The default method is the one with the best accuracy on all reference models: the UNet again on
    # the larger set, the ConvNet, and the BERT in static int8 (cosine to float).
    method_cases = [*cases,
                    Case(f"unet ({len(MORE_UNET_SEEDS) * MORE_UNET_IMAGES} more)", cases[-1].model, calib["unet"],
                         cases[-1].more_eval, 1, {}),
                    Case("convnet", str(models / "convnet.pt2"), str(models / "convnet_calib.npz"),
                         str(models / "convnet_eval.npz"), 32, {}),
                    Case("bert", str(models / "bert.pt2"), str(models / "bert_calib.npz"),
                         str(models / "bert_eval.npz"), 1, {}, metric="cosine")]
    began = time.perf_counter()
    sections = []
    for case in cases:
        table, facts = side_by_side(case, options.threads, options.runs)
        ours, ort, fp32 = facts["qconvert onnx-qdq"], facts["ORT quantize_static"], facts["onnx-fp32"]
        ort_u8 = facts["ORT quantize_static u8"]
        sections.append(
            f"## {case.name}: static int8, batch {case.batch}\n\n{table}\n\n"
            f"- qconvert vs float: metric {ours['metric'] - fp32['metric']:+.4g}, latency "
            f"{ours['ms'] / fp32['ms']:.2f}×, size {ours['mb'] / fp32['mb']:.3f}×\n"
            f"- qconvert vs ORT quantize_static: metric {ours['metric'] - ort['metric']:+.4g}, latency "
            f"{ours['ms'] / ort['ms']:.2f}×\n"
            f"- qconvert vs ORT quantize_static u8: metric {ours['metric'] - ort_u8['metric']:+.4g}, latency "
            f"{ours['ms'] / ort_u8['ms']:.2f}×\n"
            + (f"- on {len(MORE_UNET_SEEDS) * MORE_UNET_IMAGES} more images (seeds "
               f"{', '.join(map(str, MORE_UNET_SEEDS))}): {more_metric_line(facts)}\n" if "more" in ours else ""))
        print(f"{case.name}: done", flush=True)

    sections.append("## Calibration methods (weights per-channel, activations affine int8; in-process onnxruntime)\n\n"
                    "drop = float metric − int8 metric on the evaluation set (top-1 in points; Dice and, for the "
                    "BERT in static int8, cosine to float in 0..1). "
                    f"Default: `{QuantConfig().method_label}`.\n\n"
                    + method_table(method_cases, options.threads) + "\n")
    print("methods: done", flush=True)

    vgg = cases[0]
    result = sensitivity(vgg.model, calib=vgg.calib, eval_path=vgg.eval, out_dir=WORK / "sensitivity",
                         threads=options.threads, **vgg.options)
    lines = ["| layer | op | weight | only this int8: SQNR dB | drop | all but this: SQNR dB | drop |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {l.layer} | {l.op} | {l.weight or '–'} | {l.only_sqnr_db:.1f} | {l.only_drop:.3f} | "
              f"{l.all_but_sqnr_db:.1f} | {l.all_but_drop:.3f} |" for l in result.layers]
    mixed = convert(vgg.model, ["onnx-qdq"], out_dir=WORK / "vgg_mixed", calib=vgg.calib, eval_path=vgg.eval,
                    batch=vgg.batch, threads=options.threads, runs=options.runs, max_drop=0.2, **vgg.options)
    drop = mixed.row("source").metrics["top1"] - mixed.row("onnx-qdq").metrics["top1"]
    sections.append(
        f"## VGG sensitivity ({len(result.layers)} int8 layers; all int8: SQNR {result.int8_sqnr_db:.1f} dB, "
        f"top-1 drop {result.int8_drop:.3f})\n\n" + "\n".join(lines) + "\n\n"
        f"`--max-drop 0.2`: layers kept float: {', '.join(mixed.float_layers) or 'none'}; top-1 drop "
        f"{drop:.3f} points (bound 0.2).\n")
    print("sensitivity: done", flush=True)

    bert = convert(str(models / "bert.pt2"), ["onnx-fp32", "onnx-dynamic"], out_dir=WORK / "bert",
                   eval_path=str(models / "bert_eval.npz"), metric="cosine", threads=options.threads,
                   runs=options.runs)
    fp32, dyn = bert.row("onnx-fp32"), bert.row("onnx-dynamic")
    with np.load(models / "bert_eval.npz") as data:
        ids = {"input_ids": data["input_ids"][:1]}
    timed = paired_ms({"fp32": fp32.path, "dynamic": dyn.path}, ids, options.threads, pairs=500)
    fp32_ms, dyn_ms = timed["fp32"], timed["dynamic"]
    sections.append(
        "## BERT-style encoder: onnx-dynamic, batch 1\n\n"
        f"cosine to the source on the evaluation set {dyn.metrics['cosine']:.5f}; latency {dyn_ms:.2f} ms vs "
        f"onnx-fp32 {fp32_ms:.2f} ms ({dyn_ms / fp32_ms:.2f}×, paired medians); size "
        f"{dyn.size_mb:.3f} MB vs {fp32.size_mb:.3f} MB.\n")

    header = (f"# qconvert int8 next to onnxruntime.quantization\n\n- date: "
              f"{datetime.datetime.now().isoformat(timespec='seconds')}\n- machine: {describe()}\n"
              f"- command: `python -m bench.quant_vs_ort --models {options.models} --threads {options.threads} "
              f"--runs {options.runs}` (part of `make bench`); {time.perf_counter() - began:.0f} s\n\n")
    with atomic_path(Path(options.out)) as tmp:
        tmp.write_text(header + (__doc__.split("\n\n", 1)[1]) + "\n" + "\n".join(sections))
    print(f"wrote {options.out}")


if __name__ == "__main__":
    main()
