"""The deployment bundles of a conversion (--bundle, `qconvert package`) for the report: per bundle its target,
folder, files, static shapes, golden-set parity, verify.py's result and, for TFLite Micro, the measured arena and
TFLM against LiteRT. Built from the bundle's manifest.json, the one record of what a bundle holds."""

from __future__ import annotations

from dataclasses import dataclass

from qconvert.report.columns import Column, TextTable, text
from qconvert.report.format import number


@dataclass
class MicroFacts:
    """The golden set in the tflite-micro Python interpreter against LiteRT (qconvert.bundle.micro)."""

    version: str
    arena_bytes: int  # measured, then confirmed by a second run in exactly that arena
    max_steps: int | None  # integer outputs: largest difference in output quantization steps
    max_abs_difference: float  # in the outputs' own units
    differing_pct: float  # share of output elements that differ at all, 0..100
    elements: int
    ops: int  # builtin operators the op resolver registers


@dataclass
class BundleRecord:
    target: str
    runtime: str
    folder: str
    model: str  # the bundled model file
    model_bytes: int
    static: bool  # batch 1 and every dim static in the file itself
    dynamic_kept: list[str]  # dims the file keeps a run-time value (TorchScript's batch)
    golden_samples: int
    sqnr_vs_source_db: float | None  # the bundled file on the golden set
    sqnr_vs_ir_db: float | None
    verify: str | None = None  # verify.py's line, run on the finished bundle; None in the bundle's own copy
    micro: MicroFacts | None = None
    ethos_u: str | None = None  # Vela's estimate in words (information), or why it was skipped


def _float(value) -> float | None:
    """manifest.json writes an infinite SQNR (identical outputs) as "inf"."""
    return None if value is None else float(value)


def _ethos_u(estimate: dict | None) -> str | None:
    if not estimate:
        return None
    if "skipped" in estimate:
        return f"skipped: {estimate['skipped']}"
    return (f"{estimate['npu_operators']} NPU / {estimate['cpu_operators']} CPU ops, "
            f"{number(estimate['inference_ms'], '.3f')} ms at {number(estimate['clock_hz'] / 1e6, '.0f')} MHz, "
            f"SRAM {number(estimate['sram_kib'], '.1f')} KiB, flash {number(estimate['off_chip_flash_kib'], '.1f')} "
            f"KiB ({estimate['accelerator']}, Vela {estimate['vela']})")


def bundle_record(manifest: dict, folder: str, verify: str | None = None) -> BundleRecord:
    model = next(a for a in manifest["artifacts"] if a["role"] == "model")
    golden = manifest["parity"]["golden"]
    micro = manifest.get("micro")
    return BundleRecord(
        manifest["target"]["name"], manifest["target"]["runtime"], folder, model["path"], model["size_bytes"],
        manifest["static_shapes"]["all_static"], list(manifest["static_shapes"]["dynamic_kept"]), golden["samples"],
        _float(golden["sqnr_vs_source_db"]), _float(golden["sqnr_vs_ir_db"]), verify,
        MicroFacts(micro["version"], micro["arena_bytes"], micro["max_steps"], float(micro["max_abs_difference"]),
                   float(micro["differing_pct"]), micro["elements"], len(micro["ops"])) if micro else None,
        _ethos_u(manifest.get("ethos_u")))


def from_dict(data: dict) -> BundleRecord:
    """A record as report.json holds it."""
    micro = data.get("micro")
    return BundleRecord(**{**data, "sqnr_vs_source_db": _float(data.get("sqnr_vs_source_db")),
                           "sqnr_vs_ir_db": _float(data.get("sqnr_vs_ir_db")),
                           "micro": MicroFacts(**micro) if micro else None})


def _micro(value):
    return lambda r: value(r.micro) if r.micro else None


def _static(record: BundleRecord) -> str:
    return "yes" if record.static else "keeps " + ", ".join(record.dynamic_kept) + " dynamic"


COLUMNS = [
    text("target", lambda r: r.target), text("runtime", lambda r: r.runtime), text("folder", lambda r: r.folder),
    Column("model MB", lambda r: r.model_bytes / 1e6, ".3f"),
    text("batch 1, static", _static),
    Column("golden SQNR dB vs source", lambda r: r.sqnr_vs_source_db, ".1f"),
    Column("vs IR", lambda r: r.sqnr_vs_ir_db, ".1f"),
    Column("TFLM arena bytes", _micro(lambda m: m.arena_bytes), ",d"),
    Column("TFLM vs LiteRT max steps", _micro(lambda m: m.max_steps), "d"),
    Column("TFLM differing %", _micro(lambda m: m.differing_pct), ".2f"),
    text("Ethos-U (Vela)", lambda r: r.ethos_u),
    text("verify.py", lambda r: r.verify),
]


def bundle_spec(records: list[BundleRecord]) -> TextTable:
    micro = next((r.micro for r in records if r.micro), None)
    caption = ("golden SQNR: the bundled file's outputs on the golden set against the source's and against the IR "
               "it was emitted from; verify.py: its line on the finished bundle (a bundle whose verify.py fails is "
               "not written)")
    if micro:
        caption += (f"; TFLM: the golden set in TFLite Micro {micro.version}, arena measured (used bytes, then run "
                    "again in exactly that arena), differences from LiteRT over every output element")
    return TextTable("deployment bundles", COLUMNS, records, caption)

