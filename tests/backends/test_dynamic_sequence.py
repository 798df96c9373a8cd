"""An encoder exported with a dynamic batch and sequence length keeps both dynamic in tflite-fp32 and
torch-fp32: each artifact, read back the way a user would, matches the source at two sequence lengths."""

from __future__ import annotations

import numpy as np
import pytest

from qconvert.report.metrics import sqnr_db

TARGETS = ["tflite-fp32", "torch-fp32"]


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    from models.zoo.registry import select

    return select(["bert"])[0].build(tmp_path_factory.mktemp("bert"))  # 2 layers, hidden 64, random weights


def _feeds(batch: int, seq: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seq)
    mask = np.ones((batch, seq), np.int64)
    mask[0, seq // 2:] = 0  # one padded sequence
    return {"input_ids": rng.integers(0, 1000, (batch, seq)).astype(np.int64), "attention_mask": mask}


def _source(path, feeds):
    import torch

    module = torch.export.load(str(path)).module()
    with torch.no_grad():
        return [o.numpy() for o in module(*(torch.from_numpy(feeds[n]) for n in ("input_ids", "attention_mask")))]


def _artifact(target, path, feeds):
    if target == "tflite-fp32":
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=path)
        details = {d["name"]: d for d in interpreter.get_input_details()}
        for name, array in feeds.items():
            interpreter.resize_tensor_input(details[name]["index"], array.shape)
        interpreter.allocate_tensors()
        for name, array in feeds.items():
            interpreter.set_tensor(details[name]["index"], array.astype(details[name]["dtype"]))
        interpreter.invoke()
        return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
    import torch

    module = torch.jit.load(path)
    return [o.numpy() for o in module(*(torch.from_numpy(feeds[n]) for n in ("input_ids", "attention_mask")))]


def test_encoder_artifacts_hold_at_two_sequence_lengths(bert, tmp_path):
    from qconvert.api import convert

    result = convert(str(bert), to=TARGETS, out_dir=tmp_path, parity_samples=4, runs=1, warmup=0)
    for target in TARGETS:
        row = result.row(target)
        assert row.status == "ok", (target, row.error)
        for seq in (24, 48):  # neither is the probe's size (64)
            feeds = _feeds(3, seq)
            want, got = _source(bert, feeds), _artifact(target, row.path, feeds)
            assert [g.shape for g in got] == [w.shape for w in want], (target, seq)
            for w, g in zip(want, got):
                assert sqnr_db(w, g) >= 50, (target, seq, sqnr_db(w, g))
