"""The IR: an ONNX model held in memory with onnx-ir, plus qconvert metadata in metadata_props."""

from qconvert.ir.metadata import Layout, get_meta, input_layouts, set_meta
from qconvert.ir.serialize import load_ir, save_ir

__all__ = ["Layout", "get_meta", "set_meta", "input_layouts", "load_ir", "save_ir"]
