"""One `TextTable` (qconvert.report.columns) as a rich table, as Markdown or as an HTML table: the same
cells in each, only the markup differs."""

from __future__ import annotations

from html import escape

from rich.table import Table

from qconvert.report.columns import Align, TextTable, Tone

RICH_STYLES = {Tone.NORMAL: None, Tone.WARN: "yellow", Tone.BAD: "red"}


def to_rich(table: TextTable) -> Table:
    out = Table(title=table.title, caption=table.caption)
    for column in table.columns:
        out.add_column(column.header, justify=column.align.value)
    for index, cells in enumerate(table.cells()):
        out.add_row(*cells, style=RICH_STYLES[table.tone(index)])
    return out


def to_markdown(table: TextTable) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "/").replace("\n", " ") for cell in cells) + " |"

    rule = "|" + "".join("---:|" if c.align is Align.RIGHT else "---|" for c in table.columns)
    return "\n".join([line([c.header for c in table.columns]), rule] + [line(cells) for cells in table.cells()])


def to_html(table: TextTable) -> str:
    head = "".join(f'<th class="{c.align.value}">{escape(c.header)}</th>' for c in table.columns)
    body = []
    for index, cells in enumerate(table.cells()):
        tds = "".join(f'<td class="{c.align.value}">{escape(cell)}</td>' for c, cell in zip(table.columns, cells))
        body.append(f'<tr class="{table.tone(index).value}">{tds}</tr>')
    caption = f"<caption>{escape(table.caption)}</caption>" if table.caption else ""
    return (f"<table>{caption}<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body)
            + "\n</tbody></table>")
