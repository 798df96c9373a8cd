"""Child process of the TFLite Micro run (a TFLM abort must not take qconvert down, and the interpreter prints
its arena use to the process's stderr):

    python -m qconvert.bundle.micro_child MODEL.tflite INPUTS.npz OUT.npz ARENA_BYTES OUTPUTS

Runs every golden sample, writes the outputs (output_i, samples stacked) and prints the RecordingMicroAllocator's
report to stderr."""

from __future__ import annotations

import sys

import numpy as np


def main(model: str, inputs_path: str, out: str, arena: str, output_count: str) -> int:
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_file(model, arena_size=int(arena))
    with np.load(inputs_path) as data:
        inputs = [data[f"input_{i}"] for i in range(len(data.files))]
    outputs = []
    for sample in range(len(inputs[0])):
        for index, array in enumerate(inputs):
            interpreter.set_input(np.ascontiguousarray(array[sample]), index)
        interpreter.invoke()
        outputs.append([np.copy(interpreter.get_output(i)) for i in range(int(output_count))])
    np.savez(out, **{f"output_{o}": np.stack([s[o] for s in outputs]) for o in range(len(outputs[0]))})
    sys.stderr.flush()
    interpreter.print_allocations()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
