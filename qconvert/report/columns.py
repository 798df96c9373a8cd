"""The column spec every renderer reads: a table is its columns (header, where the value comes from, its
number format, its alignment) over a list of records. Rich, Markdown and HTML render the same
`TextTable`, whose cells are formatted once here by qconvert.report.format."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable

from qconvert.report.format import MISSING, number


class Align(Enum):
    LEFT = "left"
    RIGHT = "right"


class Tone(Enum):
    """How a row reads at a glance: rich colours it, HTML gives it a class."""

    NORMAL = "normal"
    WARN = "warn"  # skipped
    BAD = "bad"  # failed, parity-failed


@dataclass(frozen=True)
class Column:
    header: str
    value: Callable[[Any], Any]  # the record's raw value: a number, text or None
    spec: str | None = None  # number format (format()'s mini-language); None: the value is text
    align: Align = Align.RIGHT

    def cell(self, record) -> str:
        value = self.value(record)
        if self.spec is not None:
            return number(value, self.spec)
        return MISSING if value is None else str(value)


def text(header: str, value: Callable[[Any], Any]) -> Column:
    """A left-aligned text column."""
    return Column(header, value, None, Align.LEFT)


@dataclass
class TextTable:
    title: str
    columns: list[Column]
    records: list
    caption: str | None = None
    tones: list[Tone] = field(default_factory=list)  # per record; empty: all NORMAL

    def cells(self) -> list[list[str]]:
        return [[column.cell(record) for column in self.columns] for record in self.records]

    def tone(self, index: int) -> Tone:
        return self.tones[index] if index < len(self.tones) else Tone.NORMAL
