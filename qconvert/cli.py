"""The command line: `qconvert MODEL --to T[,T...]`, plus `qconvert inspect MODEL` and `qconvert targets`."""

from __future__ import annotations

import json
import sys

import click

from qconvert.errors import QConvertError

SUBCOMMANDS = ("inspect", "targets")


class DefaultToConvert(click.Group):
    """`qconvert MODEL ...` has no subcommand word: anything that is not a subcommand means convert."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["convert", *args]
        return super().parse_args(ctx, args)


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


source_options = [
    click.option("--input-shape", "input_shapes", multiple=True, metavar="[NAME=]D,D,..[:DTYPE]",
                 help="Input shape where the file does not record it; repeat per input."),
    click.option("--weights", type=str, help="state_dict for a file.py:factory source (loaded weights_only)."),
    click.option("--trust-code", is_flag=True, help="Allow importing/running the model's own Python code."),
    click.option("--debug", is_flag=True, help="Show tracebacks."),
]


def with_source_options(function):
    for option in reversed(source_options):
        function = option(function)
    return function


@click.group(cls=DefaultToConvert, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="qconvert")
def main():
    """qconvert MODEL --to TARGET[,TARGET...]: convert a model and prove every artifact in its runtime."""


@main.command("convert", hidden=True)
@click.argument("model")
@click.option("--to", "to", required=True, help="Targets, comma separated (see `qconvert targets`).")
@click.option("-o", "--out", "out_dir", default="qconvert-out", show_default=True, help="Output folder.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--io-layout", type=click.Choice(["nhwc", "nchw"]), default=None,
              help="4-D input/output layout of the artifacts [the source's].")
@click.option("--threads", type=click.IntRange(min=1), help="Threads for every runtime [physical cores].")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Batch for timing.")
@click.option("--samples", type=click.IntRange(min=1), default=16, show_default=True,
              help="Random samples for parity.")
@click.option("--runs", type=click.IntRange(min=1), default=20, show_default=True, help="Timed runs.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@with_source_options
def convert_command(model, to, out_dir, device, io_layout, threads, batch, samples, runs, as_json,
                    input_shapes, weights, trust_code, debug):
    from rich.console import Console
    from rich.progress import Progress

    from qconvert.api import convert
    from qconvert.report.table import report_table

    targets = [t.strip() for t in to.split(",") if t.strip()]
    stderr = Console(stderr=True)
    with Progress(console=stderr, transient=True, disable=as_json or not stderr.is_terminal) as bar:
        task = bar.add_task("loading", total=2 * len(targets) + 2)
        step = lambda stage, name: bar.update(task, advance=1, description=f"{stage} {name}")  # noqa: E731
        result = _run(debug, convert, model, targets, out_dir=out_dir, input_shapes=input_shapes,
                      weights=weights, trust_code=trust_code, device=device, io_layout=io_layout,
                      threads=threads, batch=batch, parity_samples=samples, runs=runs, progress=step)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        Console(width=200).print(report_table(result))
        for row in result.rows:
            if row.status not in ("ok", "skipped"):
                click.echo(f"qconvert: {row.target} {row.status}: {row.error}", err=True)
    sys.exit(result.exit_code)


@main.command("inspect")
@click.argument("model")
@click.option("--json", "as_json", is_flag=True)
@with_source_options
def inspect_command(model, as_json, input_shapes, weights, trust_code, debug):
    """Inputs/outputs with shapes and layout, op histogram, parameter count and size."""
    from qconvert.converters import load_source
    from qconvert.converters.input_spec import parse_input_shapes
    from qconvert.ir.summary import summarize
    from qconvert.passes import cleanup

    def load():
        source = load_source(model, input_specs=parse_input_shapes(list(input_shapes)), weights=weights,
                             trust_code=trust_code)
        return source, summarize(cleanup(source.ir))  # what the targets are emitted from

    source, summary = _run(debug, load)
    summary["file_mb"] = source.size_bytes / 1e6
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


if __name__ == "__main__":
    main()
