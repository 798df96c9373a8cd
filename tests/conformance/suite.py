"""ONNX's own backend node tests run through qconvert's emitters, in process.

The onnx wheel ships the generators of its node tests (`onnx.backend.test.case.node`), not the data
folders; `collect_testcases()` rebuilds every case: a model, its inputs, its expected outputs and the
suite's own tolerances. A case is *claimed* by an emitter when the emitter registers every op in the case's
graph (subgraphs included). A claimed case must pass, or be refused at emit time with a reason
(UnsupportedOpError); a wrong result or any other exception is a failure.

`torch-train` is the torch emitters as training builds them (qconvert.train.program): the same op
functions run eagerly in Python rather than scripted, where a shape is a torch.Size and not a list. It
claims what torch-fp32 claims.
"""

from __future__ import annotations

import functools
import io
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import onnx_ir as ir

from qconvert.errors import UnsupportedOpError

BACKENDS = ("tflite-fp32", "torch-fp32", "torch-train")


@dataclass(frozen=True)
class NodeCase:
    name: str
    model: onnx.ModelProto
    inputs: tuple[np.ndarray, ...]
    outputs: tuple[np.ndarray, ...]
    rtol: float
    atol: float
    ops: frozenset[str]  # every op type in the graph, "domain::Op" outside the default domain

    @property
    def tensor_only(self) -> bool:
        """Sequence, optional and map values have no counterpart in the emitters' tensor programs."""
        values = list(self.model.graph.input) + list(self.model.graph.output)
        return all(v.type.HasField("tensor_type") for v in values)


class Outcome(str, Enum):
    PASSED = "passed"
    REFUSED = "refused"  # UnsupportedOpError at emit time, with its reason
    FAILED = "failed"  # ran, but the numbers (or shapes, or dtypes) are wrong
    ERROR = "error"  # any other exception while emitting or running


@dataclass(frozen=True)
class CaseResult:
    case: str
    backend: str
    outcome: Outcome
    detail: str = ""


def _graph_ops(graph: onnx.GraphProto) -> set[str]:
    ops = set()
    for node in graph.node:
        ops.add(node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}")
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                ops |= _graph_ops(sub)
    return ops


@functools.cache
def node_cases() -> tuple[NodeCase, ...]:
    """Every node test of the installed onnx package, in name order."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            collected = collect_testcases()
    cases = []
    for case in collected:
        if case.model is None or not case.data_sets:
            continue
        inputs, outputs = (tuple(_array(v) for v in values) for values in case.data_sets[0])
        cases.append(NodeCase(case.name, case.model, inputs, outputs, case.rtol, case.atol,
                              frozenset(_graph_ops(case.model.graph))))
    return tuple(sorted(cases, key=lambda c: c.name))


def _array(value):
    """Cases keep values numpy cannot hold (float16 bit patterns of a Cast, float8...) as TensorProtos."""
    return onnx.numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else value


def claimed_ops(backend: str) -> frozenset[str]:
    if backend == "tflite-fp32":
        from qconvert.backends.tflite.registry import supported_ops
    elif backend in ("torch-fp32", "torch-train"):
        from qconvert.backends.torch.registry import supported_ops
    else:
        raise ValueError(f"unknown backend {backend}")
    return supported_ops()


def claimed_cases(backend: str) -> list[NodeCase]:
    ops = claimed_ops(backend)
    return [case for case in node_cases() if case.tensor_only and case.ops <= ops]


def _feeds(case: NodeCase, model: ir.Model) -> dict[str, np.ndarray]:
    names = [v.name for v in model.graph.inputs]
    # Optional inputs left out of a case are trailing graph inputs without data.
    return {name: np.asarray(array) for name, array in zip(names, case.inputs)}


def _run_tflite(model: ir.Model, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    from qconvert.backends.targets import EmitOptions
    from qconvert.backends.tflite.emit import convert
    from qconvert.backends.tflite.runtime import LiteRTSession

    flatbuffer, facts = convert(model, "fp32", EmitOptions(), "tflite-fp32")
    with tempfile.TemporaryDirectory(prefix="qconvert-conformance-") as work:
        path = Path(work) / "case.tflite"
        path.write_bytes(flatbuffer)
        session = LiteRTSession(str(path), facts, "cpu", 1)
        return session.finish(session.run(session.prepare(feeds)))


def _run_torch(model: ir.Model, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import torch

    from qconvert.backends.torch.emit import build_module
    from qconvert.backends.torch.runtime import TorchSession

    module, facts = build_module(model, "float", "torch-fp32")
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buffer)  # what the artifact is: scripted, saved, loaded
    with tempfile.TemporaryDirectory(prefix="qconvert-conformance-") as work:
        path = Path(work) / "case.pt"
        path.write_bytes(buffer.getvalue())
        session = TorchSession(str(path), facts, "cpu", 1)
        return session.finish(session.run(session.prepare(feeds)))


def _run_torch_train(model: ir.Model, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The training program (qconvert.train.program: the torch emitters run eagerly in Python, not
    scripted) in eval mode, with gradients on: what fine-tuning and QAT compute on any IR."""
    import torch

    from qconvert.train.program import trainable_program

    program = trainable_program(model)
    program.module.eval()
    outputs = program({name: torch.from_numpy(np.array(array)) for name, array in feeds.items()})
    return [output.detach().numpy() if isinstance(output, torch.Tensor) else np.asarray(output) for output in outputs]


RUNNERS: dict[str, Callable[[ir.Model, dict[str, np.ndarray]], list[np.ndarray]]] = {
    "tflite-fp32": _run_tflite,
    "torch-fp32": _run_torch,
    "torch-train": _run_torch_train,
}

# Runtimes carry these as the narrower type (TFLite has no 64-bit kernels); values must still match.
NARROWED = {np.dtype(np.float64): np.dtype(np.float32), np.dtype(np.int64): np.dtype(np.int32)}


def compare(expected: np.ndarray, actual: np.ndarray, rtol: float, atol: float) -> str | None:
    """None when `actual` is the suite's expected output within its tolerances, else why not."""
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.shape != actual.shape:
        return f"shape {actual.shape}, expected {expected.shape}"
    if actual.dtype != expected.dtype and NARROWED.get(expected.dtype) != actual.dtype:
        return f"dtype {actual.dtype}, expected {expected.dtype}"
    if expected.dtype == object or expected.dtype.kind in "bSU":
        return None if np.array_equal(expected, actual) else "values differ"
    try:
        np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64), rtol=rtol, atol=atol)
    except AssertionError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        return "; ".join(line for line in lines if line.startswith(("Mismatched", "Max absolute")))[:200]
    return None


def run_case(case: NodeCase, backend: str) -> CaseResult:
    model = ir.serde.deserialize_model(case.model)
    feeds = _feeds(case, model)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            actual = RUNNERS[backend](model, feeds)
    except UnsupportedOpError as error:
        return CaseResult(case.name, backend, Outcome.REFUSED, str(error).split("; run `qconvert ops`")[0])
    except Exception as error:  # noqa: BLE001  (every other failure is the emitter's bug, reported)
        text = f"{type(error).__name__}: {error}".strip().splitlines()
        return CaseResult(case.name, backend, Outcome.ERROR, text[0][:300] if text else type(error).__name__)
    if len(actual) != len(case.outputs):
        return CaseResult(case.name, backend, Outcome.FAILED, f"{len(actual)} outputs, expected {len(case.outputs)}")
    for index, (want, got) in enumerate(zip(case.outputs, actual)):
        problem = compare(want, got, case.rtol, case.atol)
        if problem:
            return CaseResult(case.name, backend, Outcome.FAILED, f"output {index}: {problem}")
    return CaseResult(case.name, backend, Outcome.PASSED)


def quiet_environment() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def run_cases_isolated(cases: list[NodeCase], backend: str, workers: int | None = None) -> dict[str, CaseResult]:
    """Every case's result, run in child processes (tests/conformance/worker.py), one per core; a case that
    kills its child (a native abort in a runtime) is an ERROR naming the signal, and the rest of that
    child's share goes on in a fresh one. The children read the cases pickled here rather than rebuilding
    the suite (seconds each)."""
    import pickle
    from concurrent.futures import ThreadPoolExecutor

    names = [case.name for case in cases]
    workers = max(1, min(workers or os.cpu_count() or 1, len(names)))
    results: dict[str, CaseResult] = {}
    with tempfile.TemporaryDirectory(prefix="qconvert-conformance-") as work:
        cases_path = Path(work) / "cases.pickle"
        cases_path.write_bytes(pickle.dumps({case.name: case for case in cases}))
        with ThreadPoolExecutor(workers) as pool:
            shares = [names[i::workers] for i in range(workers)]
            for part in pool.map(lambda share: _run_share(share, backend, cases_path), shares):
                results.update(part)
    return results


def _run_share(pending: list[str], backend: str, cases_path: Path) -> dict[str, CaseResult]:
    import signal
    import subprocess
    import sys

    results: dict[str, CaseResult] = {}
    with tempfile.TemporaryDirectory(prefix="qconvert-conformance-") as work:
        path = Path(work) / "results.jsonl"
        while pending:
            process = subprocess.run([sys.executable, "-m", "tests.conformance.worker", backend, str(path),
                                      str(cases_path)],
                                     input="\n".join(pending) + "\n", text=True, capture_output=True,
                                     env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            for line in path.read_text().splitlines() if path.exists() else []:
                entry = json.loads(line)
                results[entry["case"]] = CaseResult(entry["case"], backend, Outcome(entry["outcome"]), entry["detail"])
            pending = [name for name in pending if name not in results]
            if pending and process.returncode != 0:  # the first case without a result took the child down
                code = process.returncode
                how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
                results[pending[0]] = CaseResult(pending[0], backend, Outcome.ERROR, f"the runtime crashed ({how})")
                pending = pending[1:]
            elif pending:
                raise RuntimeError(f"conformance worker stopped without results for {pending[:3]}...")
    return results
