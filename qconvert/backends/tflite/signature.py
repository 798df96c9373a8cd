"""Give a converted .tflite its inputs and outputs in the IR's order, under the IR's names.

The TFLite converter orders a signature's outputs, and the subgraph's output tensors, by key name, so a
model with outputs (box, landmarks, prob) would come back as (landmarks, box, prob) to a caller reading
``get_output_details()`` by position. Signature keys traced by TensorFlow must also look like op names.
This rewrites the flatbuffer (with the schema TensorFlow ships): the subgraph's input and output lists
and the signature's entries follow the program's ports, each entry and its tensor named after the IR value.
A file converted from the frozen function (emit.converter_for) has no signature yet: it gets one, its
inputs in the function's argument order and its outputs in the order TensorFlow flattens the returned
dict (sorted keys), the order the converter gave the subgraph.
"""

from __future__ import annotations


def restore_io(flatbuffer: bytes, inputs: list, outputs: list) -> bytes:
    """``inputs``/``outputs`` are the program's ports (IR name, traced signature key), in the IR's order.

    Each port's ``signature`` becomes its IR name, which is what the file now says.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    if not model.signatureDefs and len(model.subgraphs) >= 1:
        model.signatureDefs = [_frozen_signature(model.subgraphs[0], inputs, outputs)]
    if len(model.signatureDefs or []) != 1:
        return flatbuffer  # nothing to reorder (a file with several signatures is left as it is)
    signature = model.signatureDefs[0]
    subgraph = model.subgraphs[signature.subgraphIndex]
    for ports, entries, attribute in ((inputs, signature.inputs, "inputs"), (outputs, signature.outputs, "outputs")):
        by_key = {entry.name.decode() if isinstance(entry.name, bytes) else entry.name: entry for entry in entries}
        if sorted(by_key) != sorted(p.signature for p in ports):
            raise ValueError(f"the converted file's {attribute} {sorted(by_key)} are not the program's")
        ordered = [by_key[p.signature] for p in ports]
        for port, entry in zip(ports, ordered):
            entry.name = port.name
            subgraph.tensors[entry.tensorIndex].name = port.name
            port.signature = port.name
        setattr(signature, attribute, ordered)
        setattr(subgraph, attribute, [entry.tensorIndex for entry in ordered])
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _frozen_signature(subgraph, inputs: list, outputs: list):
    from tensorflow.lite.python import schema_py_generated as schema

    def entries(ports: list, tensors: list, attribute: str) -> list:
        if len(ports) != len(tensors):
            raise ValueError(f"the converted file has {len(tensors)} {attribute}, the program {len(ports)}")
        return [schema.TensorMapT(name=port.signature, tensorIndex=index) for port, index in zip(ports, tensors)]

    signature = schema.SignatureDefT()
    signature.signatureKey = "serving_default"
    signature.subgraphIndex = 0
    signature.inputs = entries(inputs, list(subgraph.inputs), "inputs")
    signature.outputs = entries(sorted(outputs, key=lambda port: port.signature), list(subgraph.outputs), "outputs")
    return signature
