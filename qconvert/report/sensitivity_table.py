"""The sensitivity analysis as a table: one row per int8 layer, most sensitive first."""

from __future__ import annotations

from rich.table import Table

from qconvert.quant.sensitivity import Sensitivity
from qconvert.report.table import _num


def sensitivity_table(result: Sensitivity) -> Table:
    metric = result.metric
    summary = f"all layers int8: SQNR {_num(result.int8_sqnr_db, '.1f')} dB"
    if metric:
        summary += f", {metric} {_num(result.float_metric, '.4g')} float, drop {_num(result.int8_drop, '.4g')}"
    table = Table(title="int8 sensitivity per layer (most sensitive first)", caption=summary)
    columns = ["layer", "op", "weight", "only this int8: SQNR dB"] + ([f"{metric} drop"] if metric else [])
    columns += ["all but this int8: SQNR dB"] + ([f"{metric} drop"] if metric else [])
    for column in columns:
        table.add_column(column, justify="left" if column in ("layer", "op", "weight") else "right")
    for layer in result.layers:
        cells = [layer.layer, layer.op, layer.weight or "–", _num(layer.only_sqnr_db, ".1f")]
        cells += [_num(layer.only_drop, ".4g")] if metric else []
        cells += [_num(layer.all_but_sqnr_db, ".1f")]
        cells += [_num(layer.all_but_drop, ".4g")] if metric else []
        table.add_row(*cells)
    return table
