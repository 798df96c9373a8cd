"""Run a TorchScript artifact in the child process (CPU, or CUDA where torch has it)."""

from __future__ import annotations

import numpy as np

from qconvert.backends.session import DeviceUnavailable


class TorchSession:
    """Feeds arrive in the IR's layout; prepare() arranges them as the artifact takes them, as tensors."""

    def __init__(self, path: str, facts: dict, device: str, threads: int):
        import torch

        torch.set_num_threads(threads)
        if facts.get("engine"):
            torch.backends.quantized.engine = facts["engine"]
        if device == "cuda":
            if not torch.cuda.is_available():
                raise DeviceUnavailable("torch has no CUDA device here")
            if facts.get("engine"):
                raise DeviceUnavailable("torch's int8 kernels (quantized::*) run on CPU only")
            self.device = f"cuda:0 ({torch.cuda.get_device_name(0)})"
            self.torch_device = torch.device("cuda")
        else:
            self.device, self.torch_device = "cpu", torch.device("cpu")
        self.torch = torch
        self.module = torch.jit.load(path, map_location=self.torch_device).eval()
        self.inputs = facts.get("inputs") or []
        self.outputs = facts.get("outputs") or []

    def prepare(self, feeds: dict[str, np.ndarray]) -> list:
        names = [p["name"] for p in self.inputs] or list(feeds)
        perms = {p["name"]: p.get("perm") for p in self.inputs}
        prepared = []
        for name in names:
            array = np.asarray(feeds[name])
            if perms.get(name) and array.ndim == len(perms[name]):
                array = np.transpose(array, perms[name])
            # np.ascontiguousarray makes a 0-d array 1-d: keep scalars scalars
            prepared.append(self.torch.from_numpy(np.ascontiguousarray(array).reshape(array.shape)).to(self.torch_device))
        return prepared

    def run(self, feeds) -> list[np.ndarray]:
        if isinstance(feeds, dict):
            feeds = self.prepare(feeds)
        with self.torch.inference_mode():
            outputs = self.module(*feeds)
        if not isinstance(outputs, (tuple, list)):
            outputs = [outputs]
        return [o.cpu().numpy() for o in outputs]

    def finish(self, outputs: list[np.ndarray]) -> list[np.ndarray]:
        finished = []
        for index, array in enumerate(outputs):
            perm = self.outputs[index].get("perm") if index < len(self.outputs) else None
            finished.append(np.transpose(array, np.argsort(perm)) if perm and array.ndim == len(perm) else array)
        return finished


def open_session(path: str, options: dict, device: str, threads: int) -> TorchSession:
    return TorchSession(path, options, device, threads)
