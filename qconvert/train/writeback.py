"""Write a trained program's Parameters back into a copy of the IR, by initializer name: the IR stays the
single source of truth, and every backend lowers the trained model as it lowers any other."""

from __future__ import annotations

import onnx_ir as ir

from qconvert.ir.values import copy_model
from qconvert.train.program import TrainableProgram


def write_back(model: ir.Model, program: TrainableProgram) -> ir.Model:
    """A copy of `model` whose initializers hold the program's Parameter values (in their own dtypes)."""
    trained = copy_model(model)
    initializers = trained.graph.initializers
    for attr, name in program.parameters.items():
        value = initializers[name]
        array = program.module.get_parameter(attr).detach().cpu().numpy()
        old = value.const_value
        if tuple(array.shape) != tuple(old.shape.dims):
            raise ValueError(f"write-back: parameter {attr} has shape {list(array.shape)}, "
                             f"initializer {name!r} {list(old.shape.dims)}")
        value.const_value = ir.tensor(array.astype(old.dtype.numpy(), copy=True), name=name)
    return trained
