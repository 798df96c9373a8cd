"""Op emitters by family; importing this package registers them all."""

from qconvert.backends.tflite.ops import (  # noqa: F401
    activation,
    conv,
    einsum,
    elementwise,
    linear,
    normalization,
    indexing,
    pad,
    pool,
    qdq,
    reduce,
    reshape,
    resize,
    shape,
    tensor,
)
