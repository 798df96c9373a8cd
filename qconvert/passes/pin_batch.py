"""Pin a dynamic batch to a fixed size, for artifacts that edge runtimes and compilers take only static."""

from __future__ import annotations

import onnx_ir as ir


class PinBatch(ir.passes.InPlacePass):
    """Give each graph input's dynamic first dim the size ``batch``, and every value that shares that dim's
    name the same size, so that an emitter traces static shapes.

    Before::

        input x: float[batch, 3, 32, 32]
        y = Conv(x, w)            # y: float[batch, 8, 32, 32]

    After (batch=1)::

        input x: float[1, 3, 32, 32]
        y = Conv(x, w)            # y: float[1, 8, 32, 32]

    Values whose batch dim has no name keep it unknown; the emitter's own inference (which starts from the
    now static inputs) fixes those. Any other dynamic input dim is left as it is: `dynamic_input_dims`
    lists them, for a caller that must refuse them.
    """

    def __init__(self, *, batch: int = 1):
        super().__init__()
        self.batch = batch

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        names = set()
        modified = False
        for value in model.graph.inputs:
            if value.is_initializer() or value.shape is None or len(value.shape) == 0:
                continue
            first = value.shape[0]
            if isinstance(first, int):
                continue
            if getattr(first, "value", None):
                names.add(first.value)
            value.shape = ir.Shape([self.batch, *value.shape[1:]])
            modified = True
        if names:
            for value in _all_values(model):
                if value.shape is None or value in model.graph.inputs:
                    continue
                dims = [self.batch if not isinstance(d, int) and getattr(d, "value", None) in names else d
                        for d in value.shape]
                if dims != list(value.shape):
                    value.shape = ir.Shape(dims)
        return ir.passes.PassResult(model, modified=modified)


def _all_values(model: ir.Model):
    for node in ir.traversal.RecursiveGraphIterator(model.graph):
        yield from (v for v in node.outputs if v is not None)
    yield from model.graph.outputs


def dynamic_input_dims(model: ir.Model) -> list[str]:
    """`name[axis]` for every graph input dim that is not a fixed size."""
    return [f"{value.name}[{axis}]" for value in model.graph.inputs if not value.is_initializer()
            for axis, dim in enumerate(value.shape or ()) if not isinstance(dim, int)]
