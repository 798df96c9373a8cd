"""The report: started once the inputs are known good, so that bad data leaves nothing behind, and written
as OUT/report.json and OUT/report.html at the end."""

from __future__ import annotations

import json
from pathlib import Path

from qconvert.fileio import atomic_path
from qconvert.pipeline.state import ConversionState
from qconvert.report.result import ConversionResult


def start_report(state: ConversionState) -> None:
    state.out.mkdir(parents=True, exist_ok=True)
    source, data, measure = state.source, state.data, state.options.measure
    state.result = ConversionResult(state.model, source.framework, source.format, str(state.out), measure.device,
                                    state.settings.threads, measure.batch, next(iter(data.feeds.values())).shape[0],
                                    state.load_s, parity_data=data.parity_data, training=state.training,
                                    pruning=state.pruning)


def write_report(state: ConversionState) -> None:
    from qconvert.report.html import write_html

    write_json(state.out / "report.json", state.result.to_dict())
    write_html(state.result, state.out / "report.html")


def write_json(path: Path, data: dict) -> None:
    """Indented JSON, written whole or not at all."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2))
