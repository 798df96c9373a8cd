"""Run a .tflite file in LiteRT's interpreter (XNNPACK on CPU) in the child process."""

from __future__ import annotations

import numpy as np

from qconvert.backends.session import DeviceUnavailable


class LiteRTSession:
    """Feeds arrive in the IR's layout; prepare() arranges them as the artifact's signature wants."""

    def __init__(self, path: str, facts: dict, device: str, threads: int):
        if device == "cuda":
            raise DeviceUnavailable("LiteRT has no CUDA path here (its GPU delegate targets mobile GPUs)")
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=path, num_threads=threads)
        self.device = "cpu"
        runner = self.interpreter.get_signature_runner()
        self.input_index = {k: v["index"] for k, v in runner.get_input_details().items()}
        self.output_index = {k: v["index"] for k, v in runner.get_output_details().items()}
        self.inputs = facts.get("inputs") or [{"name": k, "signature": k, "perm": None} for k in self.input_index]
        self.outputs = facts.get("outputs") or [{"name": k, "signature": k, "perm": None} for k in self.output_index]
        self.input_dtype = {d["index"]: d["dtype"] for d in self.interpreter.get_input_details()}
        # Full-integer artifacts (tflite-int8/uint8): feeds are quantized and outputs dequantized with
        # the I/O contract's scales and zero points, so parity compares floats.
        io = facts.get("io") or {}
        self.input_quant = {p["signature"]: p for p in io.get("inputs", []) if p.get("scale")}
        self.output_quant = {p["signature"]: p for p in io.get("outputs", []) if p.get("scale")}
        self.shapes: dict[str, tuple] | None = None  # allocated on the first run, inputs or not

    def prepare(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        prepared = {}
        for port in self.inputs:
            array = as_array(feeds[port["name"]])
            if port.get("perm") and array.ndim == len(port["perm"]):
                array = np.transpose(array, port["perm"])
            index = self.input_index[port["signature"]]
            quant = self.input_quant.get(port["signature"])
            if quant is not None:
                array = quantize(array, quant["scale"], quant["zero_point"], self.input_dtype[index])
            # np.ascontiguousarray would make a scalar 1-D.
            prepared[port["signature"]] = np.require(np.asarray(array, dtype=self.input_dtype[index]), requirements="C")
        return prepared

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        shapes = {name: array.shape for name, array in feeds.items()}
        if shapes != self.shapes:  # a new batch size: resize once, not per run
            current = {d["index"]: tuple(d["shape"]) for d in self.interpreter.get_input_details()}
            for name, shape in shapes.items():
                if current.get(self.input_index[name]) != tuple(shape):  # a scalar is not resized to rank 1
                    self.interpreter.resize_tensor_input(self.input_index[name], shape, strict=False)
            self.interpreter.allocate_tensors()
            self.shapes = shapes
        for name, array in feeds.items():
            self.interpreter.set_tensor(self.input_index[name], array)
        self.interpreter.invoke()
        return [self._output(self.output_index[port["signature"]]) for port in self.outputs]

    def _output(self, index: int) -> np.ndarray:
        """The output tensor; LiteRT refuses to hand out one without elements, whose shape it still knows."""
        detail = self.interpreter._get_tensor_details(index, 0)
        if 0 in list(detail["shape"]):
            return np.zeros(detail["shape"], dtype=detail["dtype"])
        return self.interpreter.get_tensor(index)

    def finish(self, outputs: list[np.ndarray]) -> list[np.ndarray]:
        """Outputs back in the IR's layout."""
        finished = []
        for port, array in zip(self.outputs, outputs):
            perm = port.get("perm")
            if perm and array.ndim == len(perm):
                array = np.transpose(array, np.argsort(perm))
            quant = self.output_quant.get(port["signature"])
            if quant is not None:
                array = dequantize(array, quant["scale"], quant["zero_point"])
            if port.get("ir_dtype") and array.dtype.name != port["ir_dtype"]:
                array = array.astype(port["ir_dtype"])  # int64 outputs were carried as int32
            finished.append(array)
        return finished


def as_array(value) -> np.ndarray:
    """A feed as NumPy; ONNX TensorProtos (how the ONNX node tests store some values) are read as such."""
    if hasattr(value, "SerializeToString") and hasattr(value, "data_type"):
        from onnx import numpy_helper

        return numpy_helper.to_array(value)
    return np.asarray(value)


def quantize(array: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    """Float to the artifact's integer input: q = clip(round(x / scale) + zero_point)."""
    info = np.iinfo(dtype)
    q = np.round(np.asarray(array, np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(array: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """The artifact's integer output as float: x = scale · (q - zero_point)."""
    return ((np.asarray(array).astype(np.int32) - zero_point) * np.float32(scale)).astype(np.float32)


def open_session(path: str, options: dict, device: str, threads: int) -> LiteRTSession:
    return LiteRTSession(path, options, device, threads)
