"""Keep a zero Pad in front of MaxPool out of onnxruntime's PadFusion, which would change the result."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from qconvert.ir.values import constant_array


class GuardPadBeforePool(ir.passes.InPlacePass):
    """Write a pool that reads a zero Pad and pads nothing itself as ``auto_pad="VALID"`` (same function).

    onnxruntime's PadFusion (at every optimization level above none) moves a zero Pad into the
    next MaxPool's or AveragePool's ``pads``. A MaxPool pads with -inf, not 0, so every border
    window whose values are all negative changes (Keras ResNet50V2's ZeroPadding2D -> MaxPool stem:
    the exported file measured 136 dB against Keras with onnxruntime's optimizations off and 67 dB
    with them on); an AveragePool with ``count_include_pad=0`` stops counting the padded zeros.
    PadFusion leaves a pool with an ``auto_pad`` other than NOTSET alone (onnxruntime 1.31 fuses
    into a pool without a ``pads`` attribute too). Before::

        p = Pad(x, [0, 0, 1, 1, 0, 0, 1, 1])
        y = MaxPool<kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 0, 0]>(p)

    After::

        p = Pad(x, [0, 0, 1, 1, 0, 0, 1, 1])
        y = MaxPool<kernel_shape=[3, 3], strides=[2, 2], auto_pad="VALID">(p)

    Does not fire when the Pad is not a constant-mode zero pad, when the pool pads by itself
    (nothing to drop), or for an AveragePool that counts padding (fusing it is exact).
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        modified = False
        for node in ir.traversal.RecursiveGraphIterator(model.graph):
            if node.op_type in ("MaxPool", "AveragePool") and _reads_zero_pad(node) and _fusion_changes(node):
                pads = node.attributes.get("pads")
                if node.attributes.get_string("auto_pad", "NOTSET") == "NOTSET" and not (pads and any(pads.as_ints())):
                    node.attributes.pop("pads", None)
                    node.attributes["auto_pad"] = ir.Attr("auto_pad", ir.AttributeType.STRING, "VALID")
                    modified = True
        return ir.passes.PassResult(model, modified=modified)


def _fusion_changes(pool: ir.Node) -> bool:
    if pool.op_type == "MaxPool":
        return True
    return not pool.attributes.get_int("count_include_pad", 0)


def _reads_zero_pad(pool: ir.Node) -> bool:
    producer = pool.inputs[0].producer() if pool.inputs and pool.inputs[0] is not None else None
    if producer is None or producer.op_type != "Pad":
        return False
    mode = producer.attributes.get_string("mode", "constant")
    if mode != "constant":
        return False
    if len(producer.inputs) > 2 and producer.inputs[2] is not None:
        value = constant_array(producer.inputs[2])
        return value is not None and not np.any(value)
    return not producer.attributes.get_float("value", 0.0)
