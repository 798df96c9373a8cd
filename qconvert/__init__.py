"""qconvert: export and compress neural networks, and prove each artifact in its own runtime."""

from qconvert.api import convert  # noqa: E402

__all__ = ["convert"]
