"""The command line: `qconvert MODEL --to T[,T...]`, plus `qconvert inspect MODEL`, `targets` and `ops`."""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable

import click

from qconvert.backends.targets import EmitOptions
from qconvert.errors import QConvertError, UsageError
from qconvert.pipeline.options import (CalibrationOptions, ConvertOptions, EvalOptions, MeasureOptions,
                                       MixedPrecisionOptions, PruneOptions, RoundingOptions, SourceOptions,
                                       TrainingOptions)
from qconvert.prune.method import parse_method
from qconvert.pipeline.options import BundleOptions
from qconvert.quant.config import DEFAULT_METHOD, QuantConfig, make_config
from qconvert.quant.data import ImageOptions

SUBCOMMANDS = ("inspect", "targets", "sensitivity", "prune-sweep", "ops", "package")


class DefaultToConvert(click.Group):
    """`qconvert MODEL ...` has no subcommand word: anything that is not a subcommand means convert."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["convert", *args]
        return super().parse_args(ctx, args)

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        """Click's own usage errors (an option out of range, a missing argument) as one line like ours,
        instead of its usage, hint and error lines."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.ClickException as error:
            if isinstance(error, click.exceptions.NoArgsIsHelpError):  # `qconvert` alone: click's help
                error.show()
                sys.exit(error.exit_code)
            context = getattr(error, "ctx", None)
            where = f" (see `{context.command_path} --help`)" if context is not None else ""
            click.echo(f"qconvert: error: {error.format_message()}{where}", err=True)
            sys.exit(error.exit_code)
        except click.exceptions.Abort:
            click.echo("qconvert: interrupted", err=True)
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


def _fail(error: Exception, debug: bool) -> None:
    if debug:
        raise error
    click.echo(f"qconvert: error: {error}", err=True)
    sys.exit(getattr(error, "exit_code", 1))


def _run(debug: bool, function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except QConvertError as error:
        _fail(error, debug)
    except KeyboardInterrupt:
        click.echo("qconvert: interrupted", err=True)
        sys.exit(130)
    except Exception as error:  # an unexpected failure is still one line; --debug shows where
        _fail(QConvertError(f"{type(error).__name__}: {error}".splitlines()[0] + " (rerun with --debug)"), debug)


def option_group(name: str, build: Callable[..., Any], *options) -> Callable:
    """Adds `options` to a command, whose callback then receives them as one object: `name=build(**values)`,
    the options' values by their names. A new flag is then one click.option here and one field in the
    object. An error in `build` is one line, or a traceback with the command's --debug."""

    def decorate(function):
        @functools.wraps(function)  # shares function's __click_params__, so the options below add to it
        def callback(**kwargs):
            values = {key: kwargs.pop(key) for key in keys}
            return function(**kwargs, **{name: _run(kwargs["debug"], build, **values)})

        for option in reversed(options):
            callback = option(callback)
        keys = [param.name for param in callback.__click_params__[-len(options):]]
        return callback

    return decorate


debug_option = click.option("--debug", is_flag=True, help="Show tracebacks.")

with_source_options = option_group(
    "source", SourceOptions,
    click.option("--input-shape", "input_shapes", multiple=True, metavar="[NAME=]D,D,..[:DTYPE]",
                 help="Input shape where the file does not record it; repeat per input."),
    click.option("--weights", type=str, help="state_dict for a file.py:factory source (loaded weights_only)."),
    click.option("--trust-code", is_flag=True, help="Allow importing/running the model's own Python code."),
)


def _floats(text: str | None) -> tuple[float, ...] | None:
    return tuple(float(x) for x in text.split(",")) if text else None


def _calibration_options(calib, calib_samples, calib_scale, calib_mean, calib_std) -> CalibrationOptions:
    _warn_random_calibration(calib)
    return CalibrationOptions(calib, calib_samples,
                              ImageOptions(calib_scale, _floats(calib_mean) or (0.0,), _floats(calib_std) or (1.0,)))


def _warn_random_calibration(calib: str | None) -> None:
    """--calib random: one `qconvert: warning:` line here instead of Python's warning text."""
    import warnings

    from qconvert.quant.data import RANDOM_WARNING, RandomCalibrationWarning

    warnings.filterwarnings("ignore", category=RandomCalibrationWarning)
    if calib == "random":
        click.echo(f"qconvert: warning: {RANDOM_WARNING}", err=True)


# Built before the quantization options, so that --calib random warns before their errors.
with_calibration_options = option_group(
    "calibration", _calibration_options,
    click.option("--calib", metavar="PATH", help="Calibration data for static int8: .npz (arrays keyed by input "
                 "name), .npy, a folder of images, file.py:function (with --trust-code), or 'random' (a smoke "
                 "test only)."),
    click.option("--calib-samples", type=click.IntRange(min=1), default=CalibrationOptions.calib_samples,
                 show_default=True, help="Calibration samples used (the first N)."),
    click.option("--calib-scale", type=float, default=ImageOptions.scale, help="Image folders: pixel scale [1/255]."),
    click.option("--calib-mean", help="Image folders: mean to subtract after scaling, per channel (a,b,c)."),
    click.option("--calib-std", help="Image folders: std to divide by, per channel (a,b,c)."),
)


def _quant_config(method, weight_granularity, activations, activation_type) -> QuantConfig:
    return make_config(method or DEFAULT_METHOD, weight_granularity, activations, activation_type)


with_quant_config = option_group(
    "quant", _quant_config,
    click.option("--calibrate", "method", default=None, metavar="METHOD",
                 help="minmax | moving-average | percentile[:99.99] | entropy | mse [percentile:99.99]."),
    click.option("--weight-granularity", type=click.Choice(["per-channel", "per-tensor"]), default="per-channel",
                 show_default=True, help="int8 weight scales: one per output channel or one per tensor."),
    click.option("--activations", type=click.Choice(["affine", "symmetric"]), default="affine", show_default=True),
    click.option("--activation-type", type=click.Choice(["int8", "uint8"]), default="int8", show_default=True),
)

with_eval_options = option_group(
    "evaluation", EvalOptions,
    click.option("--eval", "eval_path", metavar="NPZ", help="Evaluation set: inputs plus 'labels'; adds a metric."),
    click.option("--metric", type=click.Choice(["top1", "dice", "cosine"]),
                 help="Metric for --eval [inferred: top1 for class scores, dice for 0/1 masks, else cosine]."),
)

with_measure_options = option_group(
    "measure", MeasureOptions,
    click.option("--device", type=click.Choice(["cpu", "cuda"]), default=MeasureOptions.device, show_default=True),
    click.option("--threads", type=click.IntRange(min=1), help="Threads for every runtime [physical cores]."),
    click.option("--batch", type=click.IntRange(min=1), default=MeasureOptions.batch, show_default=True,
                 help="Batch for timing."),
    click.option("--samples", "parity_samples", type=click.IntRange(min=1), default=MeasureOptions.parity_samples,
                 show_default=True, help="Random samples for parity."),
    click.option("--runs", type=click.IntRange(min=1), default=MeasureOptions.runs, show_default=True,
                 help="Timed runs."),
)

with_emit_options = option_group(
    "emit", EmitOptions,
    click.option("--io-layout", type=click.Choice(["nhwc", "nchw"]), default=None,
                 help="4-D input/output layout of the artifacts [the source's]."),
    click.option("--engine", "torch_engine", type=click.Choice(["x86", "fbgemm", "onednn", "qnnpack"]), default=None,
                 help="PyTorch int8 engine that torch-int8/torch-dynamic weights are packed for [x86]; qnnpack for "
                 "ARM."),
)

with_mixed_precision_options = option_group(
    "mixed", MixedPrecisionOptions,
    click.option("--max-drop", type=click.FloatRange(min=0), help="Mixed precision: keep the most sensitive layers "
                 "float until the int8 metric drop on --eval is within this (top-1 in points, Dice/cosine 0..1)."),
)

positive = click.FloatRange(min=0, min_open=True)

# How a training run goes, shared by the conversion and prune-sweep.
TRAINING_RUN_OPTIONS = (
    click.option("--epochs", type=click.IntRange(min=1), default=TrainingOptions.epochs, show_default=True),
    click.option("--lr", type=positive, default=TrainingOptions.lr, show_default=True,
                 help="Adam learning rate, for --finetune, --qat and prune-sweep's fine-tuning."),
    click.option("--train-batch", type=click.IntRange(min=1), default=TrainingOptions.train_batch,
                 show_default=True, help="Training batch (the model's own where its batch is fixed)."),
    click.option("--finetune-batch-statistics/--finetune-folded", "finetune_batch_statistics",
                 default=TrainingOptions.finetune_batch_statistics, show_default=True, help="Fine-tuning: each "
                 "Conv-BatchNorm-ReLU block trains its BatchNorm on batch statistics (refolded afterwards), or "
                 "keeps it folded into the conv."),
)

with_training_options = option_group(
    "training", TrainingOptions,
    click.option("--train", "train_path", metavar="NPZ", help="Training data for --finetune and --qat: inputs keyed "
                 "by input name, plus optional 'labels' (without them the float model's outputs are distilled)."),
    click.option("--finetune", is_flag=True, help="Train the float model on --train before anything else."),
    click.option("--qat", is_flag=True, help="Quantization-aware training of the static int8 model after "
                 "calibration (learned scales, LSQ), on --train or distilled on the --calib samples."),
    click.option("--temperature", type=positive, default=TrainingOptions.temperature, show_default=True,
                 help="Distillation temperature for class scores (training without labels)."),
    *TRAINING_RUN_OPTIONS,
)


def _sweep_training_options(train_path, **run) -> TrainingOptions:
    return TrainingOptions(train_path, finetune=train_path is not None, **run)


with_sweep_training_options = option_group(
    "training", _sweep_training_options,
    click.option("--train", "train_path", metavar="NPZ", help="Also fine-tune each point on these inputs (plus "
                 "optional 'labels'; without, distil the unpruned model)."),
    *TRAINING_RUN_OPTIONS,
)


def _prune_options(prune, prune_method, **scope) -> PruneOptions:
    return PruneOptions(prune, parse_method(prune_method), **_prune_scope(**scope))


def _prune_scope(prune_steps, prune_depthwise, prune_keep_first_last, prune_importance, prune_multiple_of,
                 prune_magnitudes) -> dict:
    return dict(steps=prune_steps, depthwise=prune_depthwise, keep_first_last=prune_keep_first_last,
                importance=prune_importance, multiple_of=prune_multiple_of, magnitudes=prune_magnitudes)


MAGNITUDES_HELP = ("Layer, global: rank the IR's weights as they are (BatchNorm folded in) or as trained "
                   "(folded BatchNorm divided out again).")

# What is pruned and how, besides how much and by which method: shared by the conversion and prune-sweep.
PRUNE_SCOPE_OPTIONS = (
    click.option("--prune-steps", type=int, default=PruneOptions.steps, show_default=True,
                 help="Iterative pruning in K steps on the cubic schedule, fine-tuned between steps (needs "
                 "--finetune; prune-sweep: --train)."),
    click.option("--prune-depthwise", is_flag=True, help="Unstructured: prune depthwise conv "
                 "weights too."),
    click.option("--prune-keep-first-last", is_flag=True, help="Unstructured: leave the first "
                 "and last layers dense."),
    click.option("--prune-importance", type=click.Choice(["l1", "l2", "bn"]),
                 default=PruneOptions.importance, show_default=True, help="Channel: filter L1/L2 norm or BatchNorm "
                 "gamma."),
    click.option("--prune-multiple-of", type=click.IntRange(min=1), default=PruneOptions.multiple_of,
                 show_default=True, help="Channel: kept channels rounded up to a multiple of this."),
    click.option("--prune-magnitudes", type=click.Choice(["trained", "folded"]), default=PruneOptions.magnitudes.value,
                 show_default=True, help=MAGNITUDES_HELP),
)

with_prune_options = option_group(
    "pruning", _prune_options,
    click.option("--prune", type=float, metavar="S", help="Prune the float model before anything "
                 "else: the share of weights zeroed (channel: of each channel group's filters removed), 0..1."),
    click.option("--prune-method", default=PruneOptions.method.name, show_default=True,
                 metavar="METHOD", help="layer | global (one threshold for all layers) | channel (filters removed, "
                 "the graph shrinks) | N:M (e.g. 2:4)."),
    *PRUNE_SCOPE_OPTIONS,
)

with_sweep_prune_options = option_group(
    "pruning", lambda **scope: PruneOptions(None, **_prune_scope(**scope)), *PRUNE_SCOPE_OPTIONS)

with_rounding_options = option_group(
    "rounding", RoundingOptions,
    click.option("--search-weight-scales", "weight_scales", is_flag=True, help="Static int8: set each weight "
                 "scale where its layer's output error on the --calib samples is least (below max |W| it clips "
                 "the largest weights); before --adaround and --bias-correction."),
    click.option("--adaround", is_flag=True, help="Static int8: choose each weight's rounding per layer on the "
                 "--calib samples (AdaRound), scales kept."),
    click.option("--bias-correction", is_flag=True, help="Static int8: correct each layer's bias for the mean "
                 "error its int8 weights add on the --calib samples."),
)


def _bundle_options(bundle, micro) -> BundleOptions:
    from qconvert.errors import UsageError

    if bundle is None:
        if micro:
            raise UsageError("--micro is read by --bundle; add --bundle")
        return BundleOptions()
    names = tuple(t.strip() for t in bundle.split(",") if t.strip() and t.strip() != "all")
    return BundleOptions(True, names, micro)


with_bundle_options = option_group(
    "bundle", _bundle_options,
    click.option("--bundle", is_flag=False, flag_value="all", default=None, metavar="[TARGETS]",
                 help="Also write OUT/bundle-<target>/ deployment bundles (see `qconvert package`): for the targets "
                 "named, comma separated, or alone for every target that wrote an artifact."),
    click.option("--micro", is_flag=True, help="With --bundle, TFLite targets: also the TFLite Micro C array, op "
                 "resolver and measured tensor arena."),
)


@click.group(cls=DefaultToConvert, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="qconvert")
def main():
    """qconvert MODEL --to TARGET[,TARGET...]: convert a model and prove every artifact in its runtime."""


@main.command("convert", hidden=True)
@click.argument("model")
@click.option("--to", "to", required=True, help="Targets, comma separated (see `qconvert targets`).")
@click.option("-o", "--out", "out_dir", default="qconvert-out", show_default=True, help="Output folder.")
@with_measure_options
@with_emit_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@with_calibration_options
@with_quant_config
@with_mixed_precision_options
@with_prune_options
@with_training_options
@with_rounding_options
@with_eval_options
@with_source_options
@with_bundle_options
@click.option("--seed", type=int, default=ConvertOptions.seed, show_default=True,
              help="Random parity/timing inputs, calibration sampling and training order.")
@debug_option
def convert_command(model, to, out_dir, as_json, seed, debug, **groups):
    from rich.console import Console
    from rich.progress import Progress

    from qconvert.pipeline.convert import convert
    from qconvert.report.table import report_table

    targets = [t.strip() for t in to.split(",") if t.strip()]
    stderr = Console(stderr=True)
    with Progress(console=stderr, transient=True, disable=as_json or not stderr.is_terminal) as bar:
        task = bar.add_task("loading", total=2 * len(targets) + 3)
        # Training reports its batches with the loss (stage "train"): those change the text, not the count.
        step = lambda stage, name: bar.update(task, advance=int(stage != "train"),  # noqa: E731
                                              description=f"{stage} {name}")
        result = _run(debug, convert, model, targets, ConvertOptions(**groups, seed=seed), out_dir=out_dir,
                      progress=step)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        Console(width=200).print(report_table(result))
        if result.int8_parity:
            from qconvert.report.int8_parity import parity_table

            Console(width=200).print(parity_table(result.int8_parity))
        if result.pruning:
            from qconvert.report.pruning_table import pruning_table

            Console(width=200).print(pruning_table(result))
        if result.training:
            from qconvert.report.training_table import training_table

            Console(width=200).print(training_table(result))
        if result.bundles:
            from qconvert.report.bundles import bundle_spec
            from qconvert.report.render import to_rich

            Console(width=200).print(to_rich(bundle_spec(result.bundles)))
        for row in result.rows:
            if row.status not in ("ok", "skipped"):
                click.echo(f"qconvert: {row.target} {row.status}: {row.error}", err=True)
    sys.exit(result.exit_code)


@main.command("inspect")
@click.argument("model")
@click.option("--json", "as_json", is_flag=True)
@with_source_options
@debug_option
def inspect_command(model, as_json, source, debug):
    """Inputs/outputs with shapes and layout, op histogram, parameter count and size."""
    from qconvert.ir.summary import summarize
    from qconvert.pipeline.load import clean, load_model

    def load():
        loaded = load_model(model, source)
        return loaded, summarize(clean(loaded))  # what the targets are emitted from

    loaded, summary = _run(debug, load)
    summary["file_mb"] = loaded.size_bytes / 1e6
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"{model}: {summary['framework']} {summary['format']}, opset {summary['opset']}")
    for kind in ("inputs", "outputs"):
        for value in summary[kind]:
            layout = f" {value['layout']}" if "layout" in value else ""
            click.echo(f"  {kind[:-1]:6} {value['name']}: {value['dtype']} {value['shape']}{layout}")
    click.echo(f"  parameters {summary['parameters']:,} ({summary['weights_mb']:.2f} MB of weights), "
               f"file {summary['file_mb']:.2f} MB, {summary['nodes']} nodes")
    click.echo("  ops: " + ", ".join(f"{op}×{n}" for op, n in summary["ops"].items()))


@main.command("sensitivity")
@click.argument("model")
@click.option("-o", "--out", "out_dir", default="qconvert-out", show_default=True,
              help="Folder for sensitivity.json.")
@click.option("--threads", type=click.IntRange(min=1), help="onnxruntime threads [physical cores].")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@with_calibration_options
@with_quant_config
@with_eval_options
@with_source_options
@debug_option
def sensitivity_command(model, out_dir, threads, as_json, calibration, quant, evaluation, source, debug):
    """Static int8 one layer at a time (and all but one): output SQNR and metric drop per layer, sorted."""
    from rich.console import Console

    from qconvert.pipeline.sensitivity import sensitivity
    from qconvert.report.sensitivity_table import sensitivity_table

    result = _run(debug, sensitivity, model, source, calibration, evaluation, quant, out_dir=out_dir,
                  threads=threads)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        Console(width=200).print(sensitivity_table(result))


@main.command("prune-sweep")
@click.argument("model")
@click.option("--sparsities", default="0,0.2,0.4,0.6,0.8", show_default=True, help="Comma separated, 0..1.")
@click.option("--methods", default="layer,global,channel", show_default=True,
              help="Comma separated: layer, global, channel, N:M.")
@with_sweep_training_options
@with_sweep_prune_options
@click.option("-o", "--out", "out_dir", default="qconvert-out", show_default=True, help="Folder for "
              "prune_sweep.json.")
@click.option("--threads", type=click.IntRange(min=1), help="Threads for onnxruntime and training [physical cores].")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--seed", type=int, default=ConvertOptions.seed, show_default=True)
@with_eval_options
@with_source_options
@debug_option
def prune_sweep_command(model, sparsities, methods, training, pruning, out_dir, threads, as_json, seed, evaluation,
                        source, debug):
    """The metric against sparsity for each pruning method, with and (--train) without fine-tuning."""
    from rich.console import Console

    from qconvert.pipeline.prune_sweep import prune_sweep
    from qconvert.report.prune_sweep_table import prune_sweep_table

    def run():
        try:
            shares = [float(s) for s in sparsities.split(",") if s.strip()]
        except ValueError:
            raise UsageError(f"--sparsities {sparsities}: give numbers from 0 up to 1, comma separated") from None
        kinds = [parse_method(m) for m in methods.split(",") if m.strip()]
        return prune_sweep(model, source, evaluation, kinds, shares, pruning, training, out_dir=out_dir,
                           threads=threads, seed=seed)

    result = _run(debug, run)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        Console(width=200).print(prune_sweep_table(result))


@main.command("package")
@click.argument("run_dir")
@click.option("--target", required=True, help="The target whose artifact is bundled (one of the conversion's).")
@click.option("-o", "--out", "out_dir", required=True, help="Bundle folder; must not exist, or be empty.")
@click.option("--micro", is_flag=True, help="TFLite targets: also the TFLite Micro C array, op resolver and the "
              "tensor arena measured in the tflite-micro interpreter.")
@debug_option
def package_command(run_dir, target, out_dir, micro, debug):
    """A verified deployment bundle from a conversion's output folder: the artifact at batch 1 with static
    shapes, manifest.json, SHA256SUMS, golden inputs and outputs, verify.py, a model card."""
    from qconvert.bundle.package import package

    record = _run(debug, package, run_dir, target, out_dir, micro_extras=micro)
    click.echo(f"{out_dir}: {record.target} bundle; its verify.py: {record.verify}; check it again with "
               f"`python {out_dir}/verify.py`")


@main.command("targets")
@click.option("--json", "as_json", is_flag=True)
def targets_command(as_json):
    """Every target, its runtime, and whether it is available on this machine."""
    from qconvert.backends.targets import all_targets

    targets = all_targets().values()
    if as_json:
        click.echo(json.dumps([{"name": t.name, "runtime": t.runtime, "available": t.available,
                                "description": t.description} for t in targets], indent=2))
        return
    for t in targets:
        state = "available" if t.available else f"missing {', '.join(t.missing_modules())}"
        click.echo(f"{t.name:15} {t.runtime:12} {state:10}  {t.description}")


@main.command("ops")
@click.option("--json", "as_json", is_flag=True)
def ops_command(as_json):
    """Op x target coverage, from the emitters' registries ("all": the target runs every ONNX op)."""
    import importlib

    from qconvert.backends.targets import BACKENDS, all_targets

    names = list(all_targets())
    coverage: dict[str, frozenset[str]] = {}
    for module in BACKENDS:  # a backend with per-op emitters says which ops each of its targets has
        declared = getattr(importlib.import_module(module), "op_coverage", None)
        coverage.update(declared() if declared else {})
    ops = sorted(set().union(*coverage.values())) if coverage else []
    if as_json:
        click.echo(json.dumps({n: sorted(coverage[n]) if n in coverage else "all" for n in names}, indent=2))
        return
    width = max([len(op) for op in ops] + [2])
    click.echo(f"{'op':{width}}  " + "  ".join(names))
    for op in ops:
        cells = ["all" if n not in coverage else "yes" if op in coverage[n] else "-" for n in names]
        click.echo((f"{op:{width}}  " + "  ".join(f"{c:{len(n)}}" for c, n in zip(cells, names))).rstrip())


if __name__ == "__main__":
    main()
