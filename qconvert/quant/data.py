"""Calibration and evaluation data: read from .npz/.npy, a folder of images, or a user function, then
checked against the model's inputs before any work starts.

    --calib data.npz        arrays keyed by input name (a single array serves a single input)
    --calib data.npy        one array, for a one-input model
    --calib images/         every .png/.jpg/.jpeg/.bmp in the folder, resized to the input, scaled,
                            normalised (ImageOptions), in the input's layout
    --calib gen.py:feeds    (with --trust-code) a function returning or yielding feeds: dicts of arrays
                            by input name, or arrays for a one-input model; one sample or a batch each
    --calib random          standard-normal feeds: only as an explicit choice, with a warning
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qconvert.converters.input_spec import InputSpec
from qconvert.converters.user_code import is_factory_spec, load_callable
from qconvert.errors import UsageError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}
LABELS = "labels"


RANDOM_WARNING = ("calibrating on random data (--calib random): the int8 ranges will not fit real inputs; "
                  "pass real samples with --calib for a usable model")


class RandomCalibrationWarning(UserWarning):
    """Calibrating on random data gives ranges unrelated to real inputs."""


@dataclass(frozen=True)
class ImageOptions:
    scale: float = 1.0 / 255.0  # applied to 0..255 pixels first
    mean: tuple[float, ...] = (0.0,)  # then (x - mean) / std, per channel or one for all
    std: tuple[float, ...] = (1.0,)


def check_data_path(spec: str, *, trust_code: bool, flag: str = "--calib") -> None:
    """The cheap checks, before the model is loaded: the path exists, code is trusted."""
    if spec == "random":
        return
    if is_factory_spec(spec):
        load_callable(spec, trust_code=trust_code)
        return
    path = Path(spec)
    if not path.exists():
        raise UsageError(f"{flag} {spec}: no such file or folder")
    if path.is_file() and path.suffix not in (".npz", ".npy"):
        raise UsageError(f"{flag} {spec}: expected .npz, .npy, a folder of images or file.py:function")


def load_calibration(spec: str, specs: list[InputSpec], *, samples: int | None = None,
                     trust_code: bool = False, image: ImageOptions = ImageOptions(), seed: int = 0
                     ) -> dict[str, np.ndarray]:
    """Feeds by input name, each [samples, ...], checked against `specs`."""
    check_data_path(spec, trust_code=trust_code)
    if spec == "random":
        from qconvert.ir.inputs import random_feeds

        warnings.warn(RANDOM_WARNING, RandomCalibrationWarning, stacklevel=2)
        return check_feeds(random_feeds(specs, samples or 64, seed), specs, "--calib random")
    path = Path(spec)
    if is_factory_spec(spec):
        feeds = _from_function(spec, specs, trust_code)
    elif path.is_dir():
        feeds = _from_images(path, specs, image)
    else:
        feeds = _from_arrays(path, specs, "--calib")
    feeds = check_feeds(feeds, specs, f"--calib {spec}")
    return {name: array[:samples] for name, array in feeds.items()} if samples else feeds


def load_eval(path: str, specs: list[InputSpec]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """An evaluation .npz: the inputs (as for --calib) plus a `labels` array, one label per sample."""
    file = Path(path)
    if not file.is_file() or file.suffix != ".npz":
        raise UsageError(f"--eval {path}: expected an existing .npz with the inputs and '{LABELS}'")
    with np.load(file) as data:
        if LABELS not in data.files:
            raise UsageError(f"--eval {path}: no '{LABELS}' array (has {', '.join(data.files)})")
        labels = data[LABELS]
    feeds = check_feeds(_from_arrays(file, specs, "--eval"), specs, f"--eval {path}")
    count = len(next(iter(feeds.values())))
    if len(labels) != count:
        raise UsageError(f"--eval {path}: {len(labels)} labels for {count} samples")
    return feeds, labels


def _from_arrays(path: Path, specs: list[InputSpec], flag: str) -> dict[str, np.ndarray]:
    try:
        if path.suffix == ".npy":
            arrays = {"": np.load(path, allow_pickle=False)}
        else:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files if k != LABELS}
    except Exception as error:
        raise UsageError(f"{flag} {path}: unreadable ({type(error).__name__}: {error})") from None
    names = [s.name for s in specs]
    if all(n in arrays for n in names):
        return {n: arrays[n] for n in names}
    if len(names) == 1 and len(arrays) == 1:  # one array for a one-input model, whatever its key
        return {names[0]: next(iter(arrays.values()))}
    missing = [n for n in names if n not in arrays]
    raise UsageError(f"{flag} {path}: no array for input {', '.join(missing)} "
                     f"(has {', '.join(k or '(npy)' for k in arrays) or 'none'}); key arrays by input name")


def _from_function(spec: str, specs: list[InputSpec], trust_code: bool) -> dict[str, np.ndarray]:
    function = load_callable(spec, trust_code=trust_code)
    try:
        produced = function()
        items = [produced] if isinstance(produced, (dict, np.ndarray)) else list(produced)
    except Exception as error:
        raise UsageError(f"--calib {spec} failed: {type(error).__name__}: {error}") from None
    names = [s.name for s in specs]
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for item in items:
        if not isinstance(item, dict):
            if len(names) != 1:
                raise UsageError(f"--calib {spec}: yield dicts keyed by input name ({', '.join(names)})")
            item = {names[0]: item}
        for name, spec_ in zip(names, specs):
            if name not in item:
                raise UsageError(f"--calib {spec}: a feed lacks input {name!r}")
            array = np.asarray(item[name])
            # One sample (no batch axis) or a batch: add the axis to a lone sample.
            parts[name].append(array[None] if array.ndim == len(spec_.shape) - 1 else array)
    if not items:
        raise UsageError(f"--calib {spec}: the function produced no feeds")
    return {n: np.concatenate(p) for n, p in parts.items()}


def _from_images(folder: Path, specs: list[InputSpec], options: ImageOptions) -> dict[str, np.ndarray]:
    if len(specs) != 1 or len(specs[0].shape) != 4:
        raise UsageError(f"--calib {folder}: an image folder serves a single 4-D image input")
    try:
        from PIL import Image
    except ImportError:
        raise UsageError("--calib with an image folder needs Pillow: pip install pillow") from None
    spec = specs[0]
    channels_first = spec.shape[1] in (1, 3) and spec.shape[3] not in (1, 3)
    c, h, w = (spec.shape[1:4] if channels_first else (spec.shape[3], spec.shape[1], spec.shape[2]))
    if not all(isinstance(d, int) for d in (c, h, w)):
        raise UsageError(f"--calib {folder}: the input's size is not fixed; give it with --input-shape")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UsageError(f"--calib {folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in the folder")
    images = []
    for file in files:
        with Image.open(file) as image:
            image = image.convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR)
            images.append(np.asarray(image, dtype=np.float32).reshape(h, w, c))
    x = np.stack(images) * options.scale
    x = (x - np.asarray(options.mean, np.float32)) / np.asarray(options.std, np.float32)
    return {spec.name: np.ascontiguousarray(x.transpose(0, 3, 1, 2) if channels_first else x)}


def check_feeds(feeds: dict[str, np.ndarray], specs: list[InputSpec], where: str) -> dict[str, np.ndarray]:
    """Same sample count for every input, shapes and dtypes that fit, no NaN/Inf, not empty.
    float64 data for a float32 input is cast (numpy's default float); any other dtype change is an error."""
    checked, counts = {}, set()
    for spec in specs:
        array = np.asarray(feeds[spec.name])
        rank = len(spec.shape)
        if array.ndim != rank:
            raise UsageError(f"{where}: input {spec.name!r} has shape {array.shape}; the model takes "
                             f"{rank}-D {_shape_text(spec.shape)} (samples first)")
        for axis, (want, got) in enumerate(zip(spec.shape[1:], array.shape[1:]), start=1):
            if want is not None and want != got:
                raise UsageError(f"{where}: input {spec.name!r} has shape {array.shape}; the model takes "
                                 f"{_shape_text(spec.shape)} (axis {axis} differs)")
        if array.dtype != np.dtype(spec.dtype):
            if not (array.dtype == np.float64 and spec.dtype == "float32"):
                raise UsageError(f"{where}: input {spec.name!r} is {array.dtype}; the model takes {spec.dtype}")
            array = array.astype(np.float32)
        if array.shape[0] == 0:
            raise UsageError(f"{where}: input {spec.name!r} has no samples")
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            bad = int(np.size(array) - np.isfinite(array).sum())
            raise UsageError(f"{where}: input {spec.name!r} has {bad} NaN/Inf values")
        counts.add(array.shape[0])
        checked[spec.name] = np.ascontiguousarray(array)
    if len(counts) > 1:
        raise UsageError(f"{where}: inputs have different sample counts {sorted(counts)}")
    return checked


def _shape_text(shape: Iterable[int | None]) -> str:
    return "[" + ", ".join("N" if d is None else str(d) for d in shape) + "]"
