"""README.md of a bundle: a model card written from its manifest (what it is, its I/O, how to check it, parity).
Every number goes through qconvert.report.format.number, the report's formatter."""

from __future__ import annotations

from qconvert.report.format import MISSING, metrics_text, number


def _db(value) -> str:
    """An SQNR as manifest.json holds it: a number, "inf" (identical outputs: "exact") or None."""
    return number(None if value is None else float(value), ".1f")


def _files(m: dict) -> list[str]:
    lines = ["## Files", "", "| file | role | precision | bytes | sha256 |", "|---|---|---|---|---|"]
    return lines + [f"| {a['path']} | {a['role']} | {a['precision']} | {number(a['size_bytes'], 'd')} | "
                    f"`{a['sha256'][:16]}…` |" for a in m["artifacts"]]


def _io(m: dict) -> list[str]:
    shapes = m["static_shapes"]
    static = "yes" if shapes["all_static"] else \
        f"the file keeps {', '.join(shapes['dynamic_kept'])} dynamic (it runs at batch 1 too)"
    lines = ["## Inputs and outputs", "", f"Batch 1, static shapes: {static}.", "",
             "| | name | dtype | shape | layout | scale | zero point |", "|---|---|---|---|---|---|---|"]
    for kind in ("inputs", "outputs"):
        lines += [f"| {kind[:-1]} {p['index']} | {p['name']} | {p['dtype']} | {p['shape']} | {p['layout']} | "
                  f"{number(p.get('scale'), '.9g')} | {number(p.get('zero_point'), 'g')} |" for p in m["io"][kind]]
    return lines + ["", "Integer ports: real = scale · (q − zero point)."]


def _processing(m: dict) -> list[str]:
    pre = m["preprocessing"]
    inputs = (f"Images: scale {pre['scale']}, mean {pre['mean']}, std {pre['std']}, {pre['channel_order']}, "
              f"resized {pre['resize']}." if pre.get("known") else
              f"Calibrated on {pre.get('from')}: {pre.get('note', '')}.")
    post = m["postprocessing"]
    return ["## Pre- and postprocessing", "", inputs,
            f"Outputs: {post['kind']}; labels: {post['labels'] or 'not known'}."]


def _tolerance(t: dict) -> str:
    return f"{number(t['steps'], 'd')} step" if "steps" in t else f"{number(t['atol'], '.3g')} ({t['why']})"


def _check(m: dict) -> list[str]:
    target, golden = m["target"], m["golden"]
    return ["## Check it", "", "```", "sha256sum -c SHA256SUMS",
            f"python verify.py   # needs only numpy and {target['pip']}", "```", "",
            f"verify.py checks every file's sha256, then runs the {golden['samples']} golden inputs "
            f"(golden/inputs.npz) and compares with golden/expected.npz ({golden['expected_from']}); tolerance per "
            f"output: {'; '.join(_tolerance(t) for t in golden['tolerance'])}. Any difference beyond it, or any "
            "changed file, is one line naming the file and exit code 1."]


def _parity(m: dict) -> list[str]:
    parity = m["parity"]
    report = parity["from_report"]
    agreement = report.get("top1_agreement")
    conversion = (f"- Conversion ({parity['parity_samples']} {parity['parity_data']} samples): SQNR "
                  f"{_db(report['sqnr_db'])} dB against the source (floor {number(parity['floor_db'], '.0f')} dB), "
                  f"max error {number(report['max_abs_error'], '.3g')}"
                  + (f", top-1 agreement {number(100 * agreement, '.1f')} %" if agreement is not None else "")
                  + (f", {metrics_text(report['metrics'])}" if report.get("metrics") else "") + ".")
    golden = parity["golden"]
    lines = ["## Parity", "", conversion,
             f"- This file on the golden set: SQNR {_db(golden['sqnr_vs_source_db'])} dB against the source, "
             f"{_db(golden['sqnr_vs_ir_db'])} dB against the IR it was emitted from."]
    lines += [f"- int8 parity: {e['a']} vs {e['b']}: SQNR {_db(e.get('sqnr_db'))} dB, max "
              f"{number(e.get('max_steps'), '.0f')} output steps." for e in parity["int8_parity"]]
    return lines


def _micro(mi: dict) -> str:
    difference = (f"max {number(mi['max_steps'], 'd')} steps" if mi["max_steps"] is not None else
                  f"max |difference| {number(mi['max_abs_difference'], '.3g')}")
    return (f"- TFLite Micro {mi['version']}: arena {number(mi['arena_bytes'], ',d')} bytes (measured); against "
            f"LiteRT {difference}, {number(mi['differing_pct'], '.2f')} % of {number(mi['elements'], ',d')} output "
            f"elements differ. Sources in micro/ ({len(mi['ops'])} ops).")


def _ethos_u(e: dict) -> str:
    if "skipped" in e:
        return f"- Arm Ethos-U estimate skipped: {e['skipped']}."
    return (f"- Arm Ethos-U (information, Vela {e['vela']}, {e['accelerator']}): {e['npu_operators']} NPU / "
            f"{e['cpu_operators']} CPU operators, {number(e['cycles'], ',d')} cycles "
            f"({number(e['inference_ms'], '.2f')} ms at {number(e['clock_hz'] / 1e6, '.0f')} MHz), SRAM "
            f"{number(e['sram_kib'], '.1f')} KiB, flash {number(e['off_chip_flash_kib'], '.1f')} KiB.")


def model_card(m: dict) -> str:
    target = m["target"]
    model = next(a for a in m["artifacts"] if a["role"] == "model")
    intro = (f"{target['description']}. Converted by qconvert {m['qconvert_version']} from `{m['source']['model']}` "
             f"({m['source']['framework']} {m['source']['format']}); runs in {target['runtime']} "
             f"{target['runtime_version'] or MISSING} (`pip install {target['pip']}=={target['runtime_version']}`).")
    lines = [f"# {model['path']}: {target['name']} bundle", "", intro, ""]
    for part in (_files(m), _io(m), _processing(m), _check(m), _parity(m)):
        lines += part + [""]
    lines = lines[:-1]
    if m.get("micro"):
        lines.append(_micro(m["micro"]))
    if m.get("ethos_u"):
        lines.append(_ethos_u(m["ethos_u"]))
    lines += ["", "The full conversion report, with this bundle's section: report.html.", ""]
    return "\n".join(lines)
