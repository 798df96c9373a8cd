"""What a conversion keeps in OUT/packaging/ so that `qconvert package` can bundle any of its artifacts later,
without the source model or its data:

    packaging/ir-float.onnx, ir-qdq.onnx   the IR variants the emitted targets consumed (a static TFLite file is
                                           emitted again from them; the golden outputs are compared with them)
    packaging/golden.npz                   the first parity samples (in the IR's layout and dtypes) and the
                                           source's outputs on them
    packaging/run.json                     the emit options, the quantization, the preprocessing the data had
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx_ir as ir

from qconvert.backends.targets import EmitOptions, IRVariant
from qconvert.ir.metadata import input_layouts
from qconvert.quant.config import QuantConfig

FOLDER = "packaging"
GOLDEN_SAMPLES = 4  # golden inputs a bundle carries; each is one batch-1 run on the device


@dataclass
class Kept:
    """The packaging inputs of one conversion, read back."""

    folder: Path
    run: dict  # run.json
    inputs: list[dict[str, np.ndarray]]  # golden samples, each feed with a leading batch of 1
    source_outputs: list[list[np.ndarray] | None]  # per sample; None where the source's outputs were not kept

    def ir_path(self, variant: IRVariant) -> Path:
        return self.folder / f"ir-{variant.value}.onnx"

    def emit_options(self) -> EmitOptions:
        emit = self.run["emit"]
        quant = QuantConfig(**emit["quant"]) if emit.get("quant") else None
        return EmitOptions(io_layout=emit.get("io_layout"), quant=quant, torch_engine=emit.get("torch_engine"))


def keep(out: Path, variants: dict[IRVariant, ir.Model], feeds: dict[str, np.ndarray],
         source_outputs: list[np.ndarray] | None, run: dict) -> None:
    """Writes OUT/packaging/ (each file atomically)."""
    from qconvert.ir import save_ir
    from qconvert.pipeline.report import write_json

    folder = out / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for variant, model in variants.items():
        save_ir(model, folder / f"ir-{variant.value}.onnx")
    count = min(GOLDEN_SAMPLES, min(len(v) for v in feeds.values()) if feeds else 0)
    arrays = {f"input_{name}": np.asarray(v[:count]) for name, v in feeds.items()}
    for index, output in enumerate(source_outputs or []):
        # Only an output with one row per sample can be split into samples.
        if np.ndim(output) and len(output) == len(next(iter(feeds.values()))):
            arrays[f"source_{index}"] = np.asarray(output[:count])
    from qconvert.fileio import atomic_path

    with atomic_path(folder / "golden.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    write_json(folder / "run.json", run)


def run_facts(model: ir.Model, emit: EmitOptions, calib: str | None, image, parity_data: str, metric: str | None,
              sources: list[str]) -> dict:
    """run.json: what packaging needs to know about how the artifacts were made and fed, and the source files
    with their sha256 as they were when converted."""
    from qconvert.bundle.checksums import sha256

    emit_record = {"io_layout": emit.io_layout, "torch_engine": emit.torch_engine,
                   "quant": asdict(emit.quant) if emit.quant is not None else None}
    files = [{"path": str(Path(f).resolve()), "sha256": sha256(Path(f))} for f in sources if Path(f).is_file()]
    return {"emit": emit_record, "preprocessing": preprocessing(model, calib, image), "parity_data": parity_data,
            "metric": metric, "outputs": len(model.graph.outputs), "source_files": files}


def preprocessing(model: ir.Model, calib: str | None, image) -> dict:
    """What was done to raw data before it reached the model, as far as qconvert knows: only an image folder
    is preprocessed by qconvert itself (resized, scaled, normalised); arrays are fed as the file holds them."""
    layouts = [layout for layout in input_layouts(model).values() if layout in ("NCHW", "NHWC")]
    if calib and Path(calib).is_dir():
        channels = [v.shape[1 if layouts and layouts[0] == "NCHW" else -1] for v in model.graph.inputs
                    if v.shape is not None and len(v.shape) == 4]
        return {"known": True, "from": "image folder (--calib)", "scale": image.scale, "mean": list(image.mean),
                "std": list(image.std), "channel_order": "L" if channels and channels[0] == 1 else "RGB",
                "resize": "bilinear, to the input's height and width", "source_layout": layouts[0] if layouts else None}
    origin = "random normal feeds" if calib in (None, "random") else f"arrays ({Path(calib).name if calib else ''})"
    return {"known": False, "from": origin, "scale": None, "mean": None, "std": None, "channel_order": None,
            "resize": None, "source_layout": layouts[0] if layouts else None,
            "note": "qconvert fed the model the arrays as given; preprocess raw data as the model's training did"}


def read(run_dir: Path) -> Kept | None:
    """The packaging inputs, or None where the folder was not written (an older conversion)."""
    folder = run_dir / FOLDER
    if not (folder / "run.json").is_file() or not (folder / "golden.npz").is_file():
        return None
    run = json.loads((folder / "run.json").read_text())
    with np.load(folder / "golden.npz") as data:
        arrays = {k: data[k] for k in data.files}
    feeds = {k[len("input_"):]: v for k, v in arrays.items() if k.startswith("input_")}
    count = min(len(v) for v in feeds.values()) if feeds else 0
    inputs = [{k: v[i:i + 1] for k, v in feeds.items()} for i in range(count)]
    kept_outputs = [arrays.get(f"source_{o}") for o in range(run.get("outputs", 0))]
    source_outputs = [None if any(o is None for o in kept_outputs) else [o[i:i + 1] for o in kept_outputs]
                      for i in range(count)]
    return Kept(folder, run, inputs, source_outputs)
