"""Every op family registers its emitters on import."""

from qconvert.backends.torch.ops import (  # noqa: F401
    activation, conv, elementwise, linear, normalization, pool, quantized, shape,
)
