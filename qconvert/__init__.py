"""qconvert: export and compress neural networks, and prove each artifact in its own runtime."""

__all__ = ["convert"]


def __getattr__(name):
    # Imported on first use: every runner and bundle child process imports a qconvert module, and the API's
    # imports (onnx-ir, onnx, the pipeline) took about 3 s of each child's start.
    if name == "convert":
        from qconvert.api import convert

        return convert
    raise AttributeError(f"module 'qconvert' has no attribute {name!r}")
