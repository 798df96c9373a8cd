"""`make bench`: every reference model to every available target, tables written to bench/RESULTS.md.

All rows of one model are measured in one run, side by side, so ratios hold even on a noisy machine.
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.machine import describe
from qconvert.api import convert
from qconvert.fileio import atomic_path
from qconvert.report.markdown import report_markdown


@dataclass
class Case:
    title: str
    model: str  # may hold {models}
    args: dict = field(default_factory=dict)
    cli: list[str] = field(default_factory=list)


def _data(name: str) -> tuple[dict, list[str]]:
    """Calibration and evaluation sets of a reference model, as API arguments and as CLI flags."""
    calib, evaluation = f"{{models}}/{name}_calib.npz", f"{{models}}/{name}_eval.npz"
    return {"calib": calib, "eval_path": evaluation}, ["--calib", calib, "--eval", evaluation]


def _case(title: str, model: str, data: str, args: dict | None = None, cli: list[str] | None = None) -> Case:
    data_args, data_cli = _data(data)
    return Case(title, model, {**(args or {}), **data_args}, [*(cli or []), *data_cli])


VGG_FACTORY = {"weights": "{models}/vgg_weights.pt", "trust_code": True, "input_shapes": ["1,3,32,32"]}
VGG_FACTORY_CLI = ["--weights", "{models}/vgg_weights.pt", "--trust-code", "--input-shape", "1,3,32,32"]
CASES = [
    _case("Keras UNet (.h5, NHWC, 128×128×3), batch 1", "{models}/unet.h5", "unet"),
    _case("VGG16_bn-style classifier as models/vgg_torch.py:build + state_dict, batch 32",
          "models/vgg_torch.py:build", "vgg", {**VGG_FACTORY, "batch": 32}, [*VGG_FACTORY_CLI, "--batch", "32"]),
    _case("VGG as TorchScript .pt, batch 32", "{models}/vgg.pt", "vgg", {"input_shapes": ["1,3,32,32"], "batch": 32},
          ["--input-shape", "1,3,32,32", "--batch", "32"]),
    _case("VGG as ExportedProgram .pt2, batch 32", "{models}/vgg.pt2", "vgg", {"batch": 32}, ["--batch", "32"]),
    _case("Small ConvNet as ExportedProgram .pt2, batch 32", "{models}/convnet.pt2", "convnet", {"batch": 32},
          ["--batch", "32"]),
    _case("BERT-style encoder as ExportedProgram .pt2 (seq 128), batch 1", "{models}/bert.pt2", "bert"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="build/models")
    parser.add_argument("--out", default="bench/RESULTS.md")
    parser.add_argument("--to", default="all")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--runs", type=int, default=50)
    options = parser.parse_args()

    fill = lambda text: text.replace("{models}", options.models)  # noqa: E731
    sections = []
    for case in CASES:
        args = {k: ([fill(x) for x in v] if isinstance(v, list) else fill(v) if isinstance(v, str) else v)
                for k, v in case.args.items()}
        model = fill(case.model)
        out_dir = Path("build/bench") / Path(model.split(":")[0]).name.replace(".", "_")
        began = time.perf_counter()
        result = convert(model, options.to.split(","), out_dir=out_dir, threads=options.threads,
                         runs=options.runs, **args)
        total = time.perf_counter() - began
        command = shlex.join(["qconvert", model, "--to", options.to, "-o", str(out_dir), "--runs",
                              str(options.runs), *[fill(a) for a in case.cli]])
        sections.append(
            f"## {case.title}\n\n`{command}`\n\n"
            f"Source export to the IR: {result.load_s:.2f} s; whole run {total:.1f} s; "
            f"batch {result.batch}, {result.threads} threads, parity on {result.parity_samples} {result.parity_data} samples.\n\n"
            + report_markdown(result) + "\n"
        )
        print(f"{case.title}: done in {total:.1f} s", flush=True)

    from bench import tflite_vs_keras

    sections.append(tflite_vs_keras.section(Path(options.models), options.threads, options.runs))
    print("tflite vs from_keras_model: done", flush=True)

    from bench import torch_side_by_side

    sections.append(torch_side_by_side.section(Path(options.models), options.threads, options.runs))
    print("torch artifacts vs the eager source: done", flush=True)

    from bench import tflite_int8_vs_converter

    sections.append(tflite_int8_vs_converter.section(Path(options.models), options.threads, options.runs))
    print("tflite-uint8 vs the converter's own PTQ: done", flush=True)

    header = (
        "# qconvert benchmark results\n\n"
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}\n"
        f"- machine: {describe()}\n"
        f"- command: `make bench` (python -m bench.run --models {options.models} --to {options.to} "
        f"--runs {options.runs})\n"
        "- every row of a table ran in the same session, one child process per runtime, with the same "
        "thread count; `rel. time` is latency relative to the source framework's own eager/compiled run;\n"
        "  SQNR and top-1 agreement are against the source on the first samples of the evaluation set; `convert s` is the export to "
        "the IR (source row) or the emit time of the target.\n\n"
    )
    quant = Path(options.out).with_name("QUANT.md")  # written just before by bench.quant_vs_ort (make bench)
    if quant.exists():
        sections.append("# Quantization side by side (bench/quant_vs_ort.py)\n\n"
                        + quant.read_text().split("\n", 1)[1].replace("\n## ", "\n### "))
    with atomic_path(Path(options.out)) as tmp:
        tmp.write_text(header + "\n".join(sections))
    print(f"wrote {options.out}")


if __name__ == "__main__":
    main()
