"""`convert`: the conversion pipeline, its stages in order over one ConversionState."""

from __future__ import annotations

from pathlib import Path

from qconvert.backends.hardware import physical_cores
from qconvert.backends.measure import RunSettings
from qconvert.pipeline.analyses import int8_parity
from qconvert.pipeline.bundle import keep_for_packaging, write_bundles
from qconvert.pipeline.checks import check_conversion
from qconvert.pipeline.data import load_data
from qconvert.pipeline.emit import emit_targets
from qconvert.pipeline.load import load
from qconvert.pipeline.measure import measure_source
from qconvert.pipeline.options import ConvertOptions
from qconvert.pipeline.quantize import quantize
from qconvert.pipeline.report import start_report, write_report
from qconvert.pipeline.state import ConversionState, Progress
from qconvert.pipeline.prune import prune
from qconvert.pipeline.train import finetune, measure_changed_float, quantization_aware, refine_rounding
from qconvert.report.result import ConversionResult

STAGES = [
    load,  # the source exported to the IR, and the cleaned float IR (IRVariant.FLOAT)
    load_data,  # needs the IR's inputs; bad data fails here, before anything is written
    # Stages that turn the float IR into another float IR go here, so that the float targets and the
    # quantization both start from their result; a failure leaves nothing written.
    prune,  # --prune: one-shot, or iterative with fine-tuning between steps
    finetune,  # --finetune
    start_report,  # the output folder and the report
    measure_source,  # the reference every row is compared with; it fixes the --eval metric
    measure_changed_float,  # the pruned or fine-tuned IR's row; it becomes the reference
    quantize,  # PTQ: the QDQ IR (IRVariant.QDQ)
    refine_rounding,  # --search-weight-scales, --adaround, --bias-correction: the QDQ IR refined on --calib
    quantization_aware,  # --qat: the QDQ IR trained, its weights and scales written back
    emit_targets,  # every target from the variant it consumes, measured in its runtime
    int8_parity,  # analyses of the measured artifacts
    keep_for_packaging,  # OUT/packaging/: what `qconvert package` reads besides the report and artifacts
    write_report,  # OUT/report.json
    write_bundles,  # --bundle: OUT/bundle-<target>/, from the written report
]


def convert(model: str, names: list[str], options: ConvertOptions, *, out_dir: str | Path = "qconvert-out",
            progress: Progress | None = None) -> ConversionResult:
    """Every option is checked before the model is loaded; then the stages run in order."""
    out = Path(out_dir)
    targets, uncalibrated = check_conversion(names, options, out)
    measure = options.measure
    settings = RunSettings(device=measure.device, threads=measure.threads or physical_cores(), warmup=measure.warmup,
                           runs=measure.runs)
    state = ConversionState(model, targets, uncalibrated, out, options, settings,
                            progress or (lambda stage, name: None))
    for stage in STAGES:
        stage(state)
    return state.result
