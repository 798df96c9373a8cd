"""Drop exporters' per-node debug metadata (stack traces, FX node text, module paths)."""

from __future__ import annotations

import onnx_ir as ir

# torch.onnx writes these on every node: several hundred bytes each, pointing at the exporting
# machine's Python files. Nothing downstream reads them.
DEBUG_KEYS_PREFIXES = ("pkg.torch.onnx.", "pkg.onnxscript.", "namespace")


class StripDebugMetadata(ir.passes.InPlacePass):
    """Remove debug entries from each node's ``metadata_props``; graph and model metadata stay.

    Before::

        y = Conv(x, W)   metadata_props {"pkg.torch.onnx.stack_trace": "File ...", "namespace": "..."}

    After::

        y = Conv(x, W)   metadata_props {}
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        modified = False
        for node in ir.traversal.RecursiveGraphIterator(model.graph):
            for key in [k for k in node.metadata_props if k.startswith(DEBUG_KEYS_PREFIXES)]:
                del node.metadata_props[key]
                modified = True
        return ir.passes.PassResult(model, modified=modified)
