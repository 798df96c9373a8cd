"""Run an .onnx file in onnxruntime (CPU, or CUDA where the CUDA provider is installed)."""

from __future__ import annotations

import numpy as np

from qconvert.backends.session import DeviceUnavailable


class OrtSession:
    def __init__(self, path: str, device: str, threads: int, spin: bool = True):
        """`spin=False` when several sessions alternate in one process: a session's idle threads would
        otherwise spin-wait for work and take the cores from the next session's run."""
        import onnxruntime as ort

        ort.set_default_logger_severity(3)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise DeviceUnavailable("onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(path, options, providers=providers)
        self.device = "cuda" if device == "cuda" else "cpu"
        self.input_names = [i.name for i in self.session.get_inputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, {n: feeds[n] for n in self.input_names})


def open_session(path: str, options: dict, device: str, threads: int) -> OrtSession:
    return OrtSession(path, device, threads)
