"""The sensitivity analysis as a table: one row per int8 layer, most sensitive first."""

from __future__ import annotations

from rich.table import Table

from qconvert.quant.sensitivity import Sensitivity
from qconvert.report.columns import Column, TextTable, text
from qconvert.report.format import number
from qconvert.report.render import to_rich


def sensitivity_spec(result: Sensitivity) -> TextTable:
    metric = result.metric
    summary = f"all layers int8: SQNR {number(result.int8_sqnr_db, '.1f')} dB"
    if metric:
        summary += (f", {metric} {number(result.float_metric, '.4g')} float, "
                    f"drop {number(result.int8_drop, '.4g')}")
    columns = [text("layer", lambda r: r.layer), text("op", lambda r: r.op), text("weight", lambda r: r.weight),
               Column("only this int8: SQNR dB", lambda r: r.only_sqnr_db, ".1f")]
    columns += [Column(f"{metric} drop", lambda r: r.only_drop, ".4g")] if metric else []
    columns += [Column("all but this int8: SQNR dB", lambda r: r.all_but_sqnr_db, ".1f")]
    columns += [Column(f"{metric} drop", lambda r: r.all_but_drop, ".4g")] if metric else []
    return TextTable("int8 sensitivity per layer (most sensitive first)", columns, result.layers, summary)


def sensitivity_table(result: Sensitivity) -> Table:
    return to_rich(sensitivity_spec(result))
