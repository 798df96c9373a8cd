"""Analyses over the measured artifacts, after every target has run."""

from __future__ import annotations

from qconvert.backends.targets import IRVariant
from qconvert.pipeline.state import ConversionState


def int8_parity(state: ConversionState) -> None:
    """The static int8 artifacts against each other: all come from one QDQ IR, so they should agree."""
    if len(state.int8_outputs) < 2:
        return
    from qconvert.report.int8_parity import output_scales, parity_matrix

    state.result.int8_parity = parity_matrix(state.int8_outputs,
                                             output_scales(state.variants[IRVariant.QDQ], state.io_scales))
