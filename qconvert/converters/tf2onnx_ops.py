"""TensorFlow ops that tf2onnx 1.17 has no handler for, written as standard ONNX ops.

Registered once, before a Keras model is converted (tf2onnx keeps a global handler table).
"""

from __future__ import annotations

import numpy as np

_registered = False


def register() -> None:
    global _registered
    if _registered:
        return
    from tf2onnx import utils
    from tf2onnx.handler import tf_op

    @tf_op("Erfc")
    class Erfc:
        """erfc(x) = 1 - erf(x): TF's exact GELU (Keras 3 `gelu(approximate=False)`, ConvNeXt's blocks)."""

        @classmethod
        def version_9(cls, ctx, node, **kwargs):
            dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
            erf = ctx.make_node("Erf", [node.input[0]], name=utils.make_name(node.name + "_erf"))
            one = ctx.make_const(utils.make_name(node.name + "_one"), np.array(1, dtype))
            node.type = "Sub"
            ctx.replace_inputs(node, [one.output[0], erf.output[0]])

    del Erfc
    _registered = True
