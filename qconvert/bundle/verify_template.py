"""Check this bundle: every file's sha256, then the golden inputs through the model in its runtime.

    python verify.py            exit 0: every file is as bundled and the runtime reproduces golden/expected.npz

Needs only numpy and the runtime named in manifest.json (ai_edge_litert, onnxruntime or torch). Any changed
file or output beyond the tolerance in manifest.json ends it with one line naming the file, exit 1.
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


class Failure(Exception):
    """One line for the user: what failed and where."""


def check_sums(folder):
    """Every file listed in SHA256SUMS exists and hashes as listed; every artifact is listed."""
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        raise Failure("SHA256SUMS: missing; the bundle is incomplete")
    listed = {}
    for line in sums.read_text().splitlines():
        digest, _, name = line.partition("  ")
        listed[name.strip()] = digest.strip()
    if "manifest.json" not in listed:
        raise Failure("SHA256SUMS: manifest.json is not listed; the bundle is incomplete")
    for name, digest in listed.items():
        path = folder / name
        if not path.is_file():
            raise Failure(f"{name}: missing (listed in SHA256SUMS)")
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise Failure(f"{name}: sha256 differs from SHA256SUMS (the file changed after bundling)")
    manifest = json.loads((folder / "manifest.json").read_text())
    for artifact in manifest["artifacts"]:
        if artifact["path"] not in listed:
            raise Failure(f"{artifact['path']}: not listed in SHA256SUMS")
    return manifest, len(listed)


class LiteRT:
    def __init__(self, path, target):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=1)
        self.interpreter.allocate_tensors()

    def run(self, inputs):
        for detail, array in zip(self.interpreter.get_input_details(), inputs):
            self.interpreter.set_tensor(detail["index"], array)
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(d["index"]) for d in self.interpreter.get_output_details()]


class OnnxRuntime:
    def __init__(self, path, target):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def run(self, inputs):
        return self.session.run(None, dict(zip(self.names, inputs)))


class TorchScript:
    def __init__(self, path, target):
        import torch

        torch.set_num_threads(1)
        if target.get("engine"):
            torch.backends.quantized.engine = target["engine"]
        self.torch = torch
        self.module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(self, inputs):
        with self.torch.inference_mode():
            outputs = self.module(*[self.torch.from_numpy(np.ascontiguousarray(a)) for a in inputs])
        return [o.numpy() for o in (outputs if isinstance(outputs, (tuple, list)) else [outputs])]


RUNTIMES = {"LiteRT": LiteRT, "onnxruntime": OnnxRuntime, "torch": TorchScript}


def load_golden(folder, manifest, kind):
    """golden/inputs.npz (input_0, input_1...) or golden/expected.npz (output_0...): samples stacked."""
    path = folder / manifest["golden"][kind]
    prefix, ports = ("input", "inputs") if kind == "inputs" else ("output", "outputs")
    with np.load(path) as data:
        return path, [data[f"{prefix}_{i}"] for i in range(len(manifest["io"][ports]))]


def run_golden(folder, manifest):
    """The model's outputs on every golden sample: one list of arrays per output, samples stacked."""
    target = manifest["target"]
    model = folder / manifest["golden"]["model"]
    runtime = RUNTIMES[target["runtime"]](model, target)
    _, inputs = load_golden(folder, manifest, "inputs")
    samples = len(inputs[0])
    per_sample = [runtime.run([np.ascontiguousarray(x[i]) for x in inputs]) for i in range(samples)]
    return [np.stack([outputs[o] for outputs in per_sample]) for o in range(len(per_sample[0]))]


def compare(expected, actual, tolerance, name):
    """The worst difference of one output, in steps for integer outputs; raises Failure past the tolerance."""
    if expected.shape != actual.shape:
        raise Failure(f"{name}: shape {list(actual.shape)} differs from the expected {list(expected.shape)}")
    if np.issubdtype(expected.dtype, np.integer):
        worst = int(np.max(np.abs(expected.astype(np.int64) - actual.astype(np.int64)), initial=0))
        if worst > tolerance["steps"]:
            raise Failure(f"{name}: differs by {worst} steps (allowed {tolerance['steps']})")
        return worst
    worst = float(np.max(np.abs(expected.astype(np.float64) - actual.astype(np.float64)), initial=0.0))
    if not worst <= tolerance["atol"]:  # also catches NaN
        raise Failure(f"{name}: max |difference| {worst:.3g} above the allowed {tolerance['atol']:.3g}")
    return worst


def verify(folder):
    manifest, files = check_sums(folder)
    expected_path, expected = load_golden(folder, manifest, "expected")
    actual = run_golden(folder, manifest)
    ports = manifest["io"]["outputs"]
    for index, (want, got) in enumerate(zip(expected, actual)):
        name = f"{expected_path.relative_to(folder)} output {ports[index]['name']!r} ({manifest['golden']['model']})"
        compare(want, got, manifest["golden"]["tolerance"][index], name)
    return manifest, files


def main():
    try:
        manifest, files = verify(HERE)
    except Failure as failure:
        print(f"verify: FAILED: {failure}", file=sys.stderr)
        return 1
    except ImportError as error:
        print(f"verify: FAILED: the runtime is not installed ({error}); pip install it (see README.md)",
              file=sys.stderr)
        return 1
    except Exception as error:  # a model the runtime cannot load or run is a failure of the bundle too
        line = f"{type(error).__name__}: {error}".splitlines()[0]
        print(f"verify: FAILED: {manifest_model(HERE)}: {line}", file=sys.stderr)
        return 1
    golden = manifest["golden"]
    print(f"verify: OK: {files} files match SHA256SUMS; {golden['samples']} golden samples "
          f"reproduced by {manifest['target']['runtime']}")
    return 0


def manifest_model(folder):
    try:
        return json.loads((folder / "manifest.json").read_text())["golden"]["model"]
    except Exception:
        return "manifest.json"


if __name__ == "__main__":
    sys.exit(main())
