"""One report model, four renderings: the rich table, Markdown, HTML and report.json give the same numbers,
because one column spec and one formatter make every cell."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from rich.console import Console

from qconvert.report.columns import TextTable
from qconvert.report.format import number
from qconvert.report.html import report_html
from qconvert.report.markdown import report_markdown
from qconvert.report.render import to_html, to_markdown, to_rich
from qconvert.report.result import Row, Status
from qconvert.report.table import report_spec
from tests.report.sample_results import full_result


class _Cells(HTMLParser):
    """Every table row's cell texts of an HTML page."""

    def __init__(self):
        super().__init__()
        self.rows, self._row, self._cell = [], None, None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr":
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def _html_rows(page: str) -> list[list[str]]:
    parser = _Cells()
    parser.feed(page)
    return parser.rows


def _markdown_rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()
            if line.startswith("|") and not line.startswith("|---")]


def _rich_text(table: TextTable) -> str:
    console = Console(width=400, record=True, file=open("/dev/null", "w"))
    console.print(to_rich(table))
    return console.export_text()


def _rows_from_json(data: dict) -> list[Row]:
    def number_back(value):
        return float(value) if value in ("inf", "-inf", "nan") else value

    return [Row(**{k: number_back(v) for k, v in row.items()}) for row in data["rows"]]


def test_the_formatter():
    assert number(None, ".1f") == "–"
    assert number(float("inf"), ".1f") == "exact" and number(float("-inf"), ".1f") == "-inf"
    assert number(38.25, ".1f") == "38.2" and number(0.00286, ".2e") == "2.86e-03"
    assert number(1234567, ",d") == "1,234,567"


def test_every_renderer_shows_the_same_cells():
    result = full_result()
    spec = report_spec(result)
    cells = spec.cells()
    assert cells[1][3] == "exact" and cells[2][3] == "131.0" and cells[0][3] == "–"  # SQNR: inf, number, none
    assert [c.header for c in spec.columns][9:11] == ["size MB", "zip MB"]
    assert cells[3][9:11] == ["1.000", "0.800"]  # onnx-qdq's raw and zipped size
    header = [c.header for c in spec.columns]

    markdown = _markdown_rows(to_markdown(spec))
    assert markdown[0] == header and markdown[1:] == [[c.replace("|", "/") for c in row] for row in cells]
    assert _markdown_rows(report_markdown(result))[:len(cells) + 1] == markdown

    html_rows = _html_rows(to_html(spec))
    assert html_rows[0] == header and html_rows[1:] == cells
    page_rows = _html_rows(report_html(result))
    assert all(row in page_rows for row in cells)  # the summary table of report.html

    text = _rich_text(spec)
    for row in cells:  # each row's cells in order on one line of the terminal table
        pattern = r"\s+.*".join(re.escape(cell) for cell in row if cell)
        assert re.search(pattern, text), row

    from_json = _rows_from_json(json.loads(json.dumps(result.to_dict())))
    assert TextTable(spec.title, spec.columns, from_json).cells() == cells


def test_the_caption_names_what_each_int8_artifact_computes_in_float():
    result = full_result()
    assert "computing ops in float" not in report_spec(result).caption
    rows = {row.target: row for row in result.rows}
    rows["torch-int8"].quantization = {"int8_kernels": {"Conv": 3}, "float_fallbacks": {"Conv": 2, "Sigmoid": 1}}
    rows["onnx-qdq"].quantization = {"float_ops": ["Mul node_Mul_1", "Mul node_Mul_2", "Conv node_Conv_0"]}
    rows["tflite-int8"].quantization = {"float_ops": [], "float_layers": []}
    caption = report_spec(result).caption
    assert ("; int8 artifacts computing ops in float: onnx-qdq Conv ×1, Mul ×2; "
            "torch-int8 Conv ×2, Sigmoid ×1;") in caption
    assert rows["tflite-int8"].float_compute == {}


def test_status_is_typed_and_json_keeps_the_words():
    row = Row("x", "onnxruntime", "ok")
    assert row.status is Status.OK
    row.status = "parity-failed"
    assert row.status is Status.PARITY_FAILED and not row.ok
    with pytest.raises(ValueError):
        row.status = "fine"
    data = json.loads(json.dumps(full_result().to_dict()))
    assert [r["status"] for r in data["rows"]][-2:] == ["skipped", "failed"]
    assert len(data["rows"][3]["latencies_ms"]) == 1000 and data["rows"][3]["zip_mb"] == 0.8


def test_real_conversion_rows_hold_raw_latencies_and_zipped_sizes(tiny_onnx, tmp_path):
    import zipfile

    import qconvert

    result = qconvert.convert(str(tiny_onnx), to=["onnx-fp32"], out_dir=tmp_path, threads=1, runs=3, warmup=1,
                              parity_samples=4)
    source, row = result.row("source"), result.row("onnx-fp32")
    for r in (source, row):
        assert len(r.latencies_ms) >= 3 and r.latency_ms == pytest.approx(float(np.median(r.latencies_ms)))
    archive = tmp_path / "check.zip"  # tfmot's measure, made independently
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as out:
        out.write(row.path, "tiny.fp32.onnx")
    assert row.zip_mb * 1e6 == archive.stat().st_size
    assert source.zip_mb is not None and 0 < source.zip_mb < source.size_mb * 1.01
    page = (tmp_path / "report.html").read_text()
    saved = json.loads((tmp_path / "report.json").read_text())
    spec = report_spec(result)
    assert TextTable(spec.title, spec.columns, _rows_from_json(saved)).cells() == spec.cells()
    assert all(cells in _html_rows(page) for cells in spec.cells())
    assert not math.isnan(row.zip_mb)


def test_markdown_and_html_hold_every_section_from_its_column_spec():
    """Summary, int8 parity, sensitivity, pruning, training and bundles: Markdown and report.html render the
    same TextTable, cell for cell."""
    from qconvert.report.bundles import bundle_spec
    from qconvert.report.int8_parity import parity_spec
    from qconvert.report.prune_specs import pruning_spec
    from qconvert.report.sensitivity_table import sensitivity_spec
    from qconvert.report.training_table import training_spec
    from tests.report.test_html_pruning import pruned_result

    result = pruned_result()
    text, page_rows = report_markdown(result), _html_rows(report_html(result))
    specs = [report_spec(result), parity_spec(result.int8_parity), sensitivity_spec(result.sensitivity),
             pruning_spec(result.pruning), training_spec(result), bundle_spec(result.bundles)]
    for spec in specs:
        assert to_markdown(spec) in text, spec.title
        assert _markdown_rows(to_markdown(spec))[1:] == [[c.replace("|", "/") for c in row] for row in spec.cells()]
        assert all(row in page_rows for row in spec.cells()), spec.title
    order = [text.index(to_markdown(spec)) for spec in specs]
    assert order == sorted(order)  # report.html's order
    assert "TFLM arena bytes" in text and "123,456" in text  # the sample's TFLite Micro arena
