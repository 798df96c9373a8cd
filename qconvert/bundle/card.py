"""README.md of a bundle: a model card written from its manifest (what it is, its I/O, how to check it, parity)."""

from __future__ import annotations

import math


# TODO(lead): fold into qconvert.report.format.number once that module is committed (helper H3's).
def _number(value, digits: int = 1) -> str:
    if value is None:
        return "–"
    value = float(value)  # report.json writes an infinite SQNR (identical outputs) as "inf"
    return "exact" if isinstance(value, float) and math.isinf(value) and value > 0 else f"{value:.{digits}f}"


def fmt(value) -> str:
    return "–" if value is None else f"{float(value):.3g}"


def model_card(m: dict) -> str:
    target, parity, golden = m["target"], m["parity"], m["golden"]
    model = next(a for a in m["artifacts"] if a["role"] == "model")
    lines = [f"# {model['path']}: {target['name']} bundle", "",
             f"{target['description']}. Converted by qconvert {m['qconvert_version']} from `{m['source']['model']}` "
             f"({m['source']['framework']} {m['source']['format']}); runs in {target['runtime']} "
             f"{target['runtime_version']} (`pip install {target['pip']}=={target['runtime_version']}`).", "",
             "## Files", "", "| file | role | precision | bytes | sha256 |", "|---|---|---|---|---|"]
    lines += [f"| {a['path']} | {a['role']} | {a['precision']} | {a['size_bytes']} | `{a['sha256'][:16]}…` |"
              for a in m["artifacts"]]
    lines += ["", "## Inputs and outputs", "",
              f"Batch 1, static shapes: {'yes' if m['static_shapes']['all_static'] else 'the file keeps ' + ', '.join(m['static_shapes']['dynamic_kept']) + ' dynamic (it runs at batch 1 too)'}.", "",
              "| | name | dtype | shape | layout | scale | zero point |", "|---|---|---|---|---|---|---|"]
    for kind in ("inputs", "outputs"):
        lines += [f"| {kind[:-1]} {p['index']} | {p['name']} | {p['dtype']} | {p['shape']} | {p['layout']} | "
                  f"{p.get('scale', '–')} | {p.get('zero_point', '–')} |" for p in m["io"][kind]]
    pre = m["preprocessing"]
    lines += ["", "Integer ports: real = scale · (q − zero point).", "", "## Pre- and postprocessing", "",
              (f"Images: scale {pre['scale']}, mean {pre['mean']}, std {pre['std']}, {pre['channel_order']}, "
               f"resized {pre['resize']}." if pre.get("known") else
               f"Calibrated on {pre.get('from')}: {pre.get('note', '')}."),
              f"Outputs: {m['postprocessing']['kind']}; labels: {m['postprocessing']['labels'] or 'not known'}.",
              "", "## Check it", "", "```", "sha256sum -c SHA256SUMS", "python verify.py   # needs only numpy and "
              f"{target['pip']}", "```", "",
              f"verify.py checks every file's sha256, then runs the {golden['samples']} golden inputs "
              f"(golden/inputs.npz) and compares with golden/expected.npz ({golden['expected_from']}); "
              "tolerance per output: " + "; ".join(
                  f"{t['steps']} step" if "steps" in t else f"{t['atol']:.3g} ({t['why']})" for t in golden["tolerance"])
              + ". Any difference beyond it, or any changed file, is one line naming the file and exit code 1.",
              "", "## Parity", ""]
    report = parity["from_report"]
    lines += [f"- Conversion ({parity['parity_samples']} {parity['parity_data']} samples): SQNR "
              f"{_number(report['sqnr_db'])} dB against the source (floor {parity['floor_db']:.0f} dB), max error "
              f"{fmt(report['max_abs_error'])}"
              + (f", top-1 agreement {100 * report['top1_agreement']:.1f} %" if report.get("top1_agreement") is not None
                 else "") + (", " + " ".join(f"{k} {v:.4f}" for k, v in report["metrics"].items()) if report.get("metrics") else "")
              + ".",
              f"- This file on the golden set: SQNR {_number(parity['golden']['sqnr_vs_source_db'])} dB against the "
              f"source, {_number(parity['golden']['sqnr_vs_ir_db'])} dB against the IR it was emitted from."]
    lines += [f"- int8 parity: {e['a']} vs {e['b']}: SQNR {_number(e.get('sqnr_db'))} dB, max "
              f"{_number(e.get('max_steps'), 0)} output steps." for e in parity["int8_parity"]]
    if m.get("micro"):
        mi = m["micro"]
        lines += [f"- TFLite Micro {mi['version']}: arena {mi['arena_bytes']} bytes (measured); against LiteRT max "
                  f"{mi['max_steps'] if mi['max_steps'] is not None else fmt(mi['max_abs_difference'])} "
                  f"{'steps' if mi['max_steps'] is not None else ''}, {mi['differing_pct']:.2f} % of "
                  f"{mi['elements']} output elements differ. Sources in micro/ ({len(mi['ops'])} ops)."]
    if m.get("ethos_u"):
        e = m["ethos_u"]
        lines += ([f"- Arm Ethos-U (information, Vela {e['vela']}, {e['accelerator']}): {e['npu_operators']} NPU / "
                   f"{e['cpu_operators']} CPU operators, {e['cycles']} cycles ({e['inference_ms']:.2f} ms at "
                   f"{e['clock_hz'] / 1e6:.0f} MHz), SRAM {e['sram_kib']:.1f} KiB, flash {e['off_chip_flash_kib']:.1f} KiB."]
                  if "skipped" not in e else [f"- Arm Ethos-U estimate skipped: {e['skipped']}."])
    lines += ["", "The full conversion report, with this bundle's section: report.html.", ""]
    return "\n".join(lines)
