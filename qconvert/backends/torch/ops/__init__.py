"""Every op family registers its emitters on import."""

from qconvert.backends.torch.ops import (  # noqa: F401
    activation, conv, elementwise, index, linear, normalization, pad, pool, qdq, quantized, reduce, resize, shape,
)
