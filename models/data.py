"""Offline, deterministic data for the reference models.

Everything here is numpy/scikit-learn only, so that building the Keras
UNet does not pull in torch and building the torch models does not pull in
tensorflow.
"""

import numpy as np

# Pixel statistics of scikit-learn's digits after scaling to [0, 1]
# (load_digits().images / 16 over all 1797 samples, at 8x8). Bilinear
# upscaling keeps the mean and smooths the std a little (normalised 32x32
# images have std ~0.86), which is close enough to unit variance.
DIGITS_MEAN = 0.3053
DIGITS_STD = 0.3760


def _bilinear_resize(images, size):
    """Resize [N, H, W] images to [N, size, size], half-pixel centres
    (same as torch interpolate(mode="bilinear", align_corners=False))."""
    _, h, w = images.shape

    def axis(src, dst):
        coord = np.clip((np.arange(dst) + 0.5) * src / dst - 0.5, 0, src - 1)
        lo = np.floor(coord).astype(np.int64)
        hi = np.minimum(lo + 1, src - 1)
        return lo, hi, (coord - lo).astype(np.float32)

    y0, y1, fy = axis(h, size)
    x0, x1, fx = axis(w, size)
    rows = images[:, y0] * (1 - fy)[None, :, None] + images[:, y1] * fy[None, :, None]
    return rows[:, :, x0] * (1 - fx) + rows[:, :, x1] * fx


def digits_images(size=32, channels=3):
    """All 1797 digits as normalised NCHW float32 images and int64 labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = digits.images.astype(np.float32) / 16.0  # raw pixels are 0..16
    x = _bilinear_resize(x, size)
    x = (x - DIGITS_MEAN) / DIGITS_STD
    x = np.repeat(x[:, None], channels, axis=1)
    return np.ascontiguousarray(x, dtype=np.float32), digits.target.astype(np.int64)


def digits_split(size=32, channels=3, eval_fraction=0.2, seed=0):
    """Fixed shuffled split: (x_train, y_train, x_eval, y_eval), 1438/359 by default."""
    x, y = digits_images(size, channels)
    order = np.random.default_rng(seed).permutation(len(x))
    n_eval = int(round(len(x) * eval_fraction))
    ev, tr = order[:n_eval], order[n_eval:]
    return x[tr], y[tr], x[ev], y[ev]


def shapes_with_masks(n, size=128, seed=0, max_shapes=3):
    """Random filled circles / rectangles / triangles on textured backgrounds.

    Returns images [n, size, size, 3] float32 in [0, 1] and the union of the
    shapes as a mask [n, size, size, 1] float32 in {0, 1}. Vectorised over the
    batch: each of the `max_shapes` slots is drawn for all images at once.
    """
    rng = np.random.default_rng(seed)
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    yy, xx = coords[None, :, None], coords[None, None, :]  # broadcast to [n, size, size]

    def per_image(values):
        return values.astype(np.float32)[:, None, None]

    # Background: a random colour with oriented sine stripes plus pixel noise,
    # so "foreground" cannot be found from colour alone.
    base = rng.uniform(0.2, 0.8, (n, 1, 1, 3)).astype(np.float32)
    angle = per_image(rng.uniform(0, np.pi, n))
    freq = per_image(rng.uniform(4, 16, n))
    phase = per_image(rng.uniform(0, 2 * np.pi, n))
    stripes = np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)
    noise = rng.standard_normal((n, size, size, 3), dtype=np.float32)
    images = base + 0.15 * stripes[..., None] + 0.08 * noise
    mask = np.zeros((n, size, size), dtype=bool)

    for slot in range(max_shapes):
        # The first slot always draws a shape; later ones appear with p=0.6.
        present = (rng.random(n) < (1.0 if slot == 0 else 0.6))[:, None, None]
        kind = per_image(rng.integers(0, 3, n))
        cx, cy = per_image(rng.uniform(0.15, 0.85, n)), per_image(rng.uniform(0.15, 0.85, n))
        rx, ry = per_image(rng.uniform(0.08, 0.22, n)), per_image(rng.uniform(0.08, 0.22, n))

        circle = (xx - cx) ** 2 + (yy - cy) ** 2 < rx**2
        rect = (np.abs(xx - cx) < rx) & (np.abs(yy - cy) < ry)
        # Triangle: three vertices roughly 120 degrees apart around the centre
        # (jittered, but never degenerate slivers), inside-test via the signs
        # of the three edge functions (works for either winding).
        ang = rng.uniform(0, 2 * np.pi, (n, 1)) + np.array([0, 2.09, 4.19]) + rng.uniform(-0.4, 0.4, (n, 3))
        ang = ang.astype(np.float32)
        vx = cx[..., None] + 1.3 * rx[..., None] * np.cos(ang)[:, None, None, :]
        vy = cy[..., None] + 1.3 * ry[..., None] * np.sin(ang)[:, None, None, :]
        edges = [
            (xx - vx[..., i]) * (vy[..., j] - vy[..., i]) - (yy - vy[..., i]) * (vx[..., j] - vx[..., i])
            for i, j in ((0, 1), (1, 2), (2, 0))
        ]
        triangle = ((edges[0] >= 0) & (edges[1] >= 0) & (edges[2] >= 0)) | (
            (edges[0] <= 0) & (edges[1] <= 0) & (edges[2] <= 0)
        )

        shape = np.where(kind == 0, circle, np.where(kind == 1, rect, triangle)) & present
        colour = rng.uniform(0, 1, (n, 1, 1, 3)).astype(np.float32)
        colour = colour + 0.03 * rng.standard_normal((n, size, size, 3), dtype=np.float32)
        images = np.where(shape[..., None], colour, images)
        mask |= shape

    images = np.clip(images, 0, 1).astype(np.float32)
    return images, mask[..., None].astype(np.float32)


def token_sequences(n, seq_len=128, vocab=1000, seed=0):
    """Random token sequences labelled by a rule that needs token identity
    *and* position: label 1 when most tokens in the first half come from the
    "low" bucket (ids below vocab // 2), else 0.

    Sequences are drawn with a bias (70% / 30% low tokens in the first half,
    second half unbiased) so that classes are balanced and near-ties are rare;
    the label is then computed from the rule itself, so it is always exact.
    """
    rng = np.random.default_rng(seed)
    half, mid = seq_len // 2, vocab // 2
    p_low = np.where(rng.random(n) < 0.5, 0.7, 0.3)[:, None]
    p_low = np.concatenate([np.broadcast_to(p_low, (n, half)), np.full((n, seq_len - half), 0.5)], axis=1)
    low = rng.random((n, seq_len)) < p_low
    ids = np.where(low, rng.integers(0, mid, (n, seq_len)), rng.integers(mid, vocab, (n, seq_len)))
    labels = (low[:, :half].sum(axis=1) * 2 > half).astype(np.int64)
    return ids.astype(np.int64), labels
