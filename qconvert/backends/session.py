"""What every runtime opens in its child process: a Session that maps input feeds to outputs."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class DeviceUnavailable(Exception):
    """The asked-for device (e.g. cuda) is not present for this runtime: a skipped row, not a failure."""


class Session(Protocol):
    device: str  # what actually ran it, e.g. "cpu" or "cuda:0 (NVIDIA H100)"

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...
