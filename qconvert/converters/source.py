"""What a source adapter hands back: the IR plus what is needed to run the source again as reference."""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx_ir as ir


@dataclass
class Source:
    path: str  # as the user gave it (a file, or file.py:factory)
    framework: str  # torch | keras | onnx
    format: str  # torchscript | exported-program | python-factory | keras-h5 | keras-v3 | onnx
    ir: ir.Model
    size_bytes: int
    # JSON-able options that let a child process load the same source again (weights, trust_code...).
    load_options: dict = field(default_factory=dict)
    file: str | None = None  # the file size_bytes counts, where it is not `path` (a factory's weights or .py)

    @property
    def reference_runner(self) -> str:
        """`module:function` that opens this source as a Session in a child process."""
        return {
            "torch": "qconvert.converters.torch_source:open_reference",
            "keras": "qconvert.converters.keras_source:open_reference",
            "onnx": "qconvert.backends.onnx.runtime:open_session",
        }[self.framework]
