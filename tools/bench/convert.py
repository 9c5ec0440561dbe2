"""Builds the TFLite files the bench needs but the project does not ship.

The VGG-16 baseline (its float file is ~130 MB) and, when no float twin is
shipped, the float32 modified VGG-16 are converted here with TensorFlow into
a cache folder, each with the JSON the device's :class:`Classifier` expects,
so they run through exactly the interpreter path of the shipped model.
Without trained weights the network is built with a fixed seed and marked
untrained: its speed is real, its accuracy is not reported.

TensorFlow is imported only here, and only when a file must be built.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from core.files import write_atomic
from core.quiet import native_stderr_to_debug
from device.classify import sha256_file
from device.preprocess import PIXEL_SCALE
from tools.data.augment import to_input
from tools.train.export import convert_float, convert_int8, tensor_specs

PRECISIONS = ("float32", "int8")
DEFAULT_CACHE = Path.home() / ".cache" / "facecue" / "bench"


class ConvertError(RuntimeError):
    """A bench model that cannot be built; one line saying why."""


def require_tensorflow() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the converter's C++ chatter is not for users
    try:
        # TensorFlow 2.16+ logs through absl before it reads TF_CPP_MIN_LOG_LEVEL: its
        # oneDNN and CPU-feature lines reach fd 2 at import whatever the variable says.
        with native_stderr_to_debug("tensorflow"):
            import tensorflow as tf
    except ImportError:
        raise ConvertError("TensorFlow is not installed (pip install tensorflow-cpu), "
                           "so the bench cannot build this file") from None
    return tf


def to_tflite(model: Any, calibration: np.ndarray | None) -> bytes:
    """Keras model -> TFLite bytes with the exporter's own converters: float32, or full int8
    (int8 in and out) calibrated on ``calibration`` (preprocessed uint8 faces)."""
    with warnings.catch_warnings(), native_stderr_to_debug("tensorflow"):
        warnings.simplefilter("ignore")  # TF warns that int8 I/O has no input statistics; expected
        return convert_float(model) if calibration is None else convert_int8(model, to_input(calibration))


def write_model(path: Path, data: bytes, meta: dict[str, Any]) -> Path:
    """Write ``path`` and its JSON (metadata last, so a half-built pair is never used)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)
    meta = dict(meta, file=path.name, sha256=sha256_file(path), size=path.stat().st_size, **tensor_specs(path),
                created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    write_atomic(path.with_suffix(".json"), json.dumps(meta, indent=1).encode())
    return path


def cache_stem(arch: str, weights: Path | None, calibration: np.ndarray) -> str:
    """Names a build by what went into it, so a changed input never reuses a stale file."""
    tag = sha256_file(weights)[:12] if weights else "untrained"
    calib = hashlib.sha256(calibration.tobytes()).hexdigest()[:8]
    return f"{arch}-{tag}-c{calib}"


def cached_models(arch: str, weights: Path | None, cache: Path, calibration: np.ndarray,
                  labels: tuple[str, ...], preprocessing: dict[str, Any],
                  precisions: tuple[str, ...] = PRECISIONS) -> dict[str, Path]:
    """``{precision: .tflite}`` for ``arch`` (``models.architectures.build`` name), building what is missing.

    ``calibration``: faces already through ``preprocessing`` (the shipped
    model's, so every row sees the same pixels).
    """
    if weights is not None and not weights.is_file():
        raise ConvertError(f"weights file {weights} not found")
    stem = cache_stem(arch, weights, calibration)
    paths = {p: cache / f"{stem}-{p}.tflite" for p in precisions}
    missing = [p for p, path in paths.items() if not (path.is_file() and path.with_suffix(".json").is_file())]
    if not missing:
        return paths
    require_tensorflow()
    import keras

    from models.architectures import build, count_macs

    keras.utils.set_random_seed(0)  # an untrained baseline is the same network on every run
    try:
        model = build(arch)
    except ValueError as exc:
        raise ConvertError(str(exc)) from None
    if weights is not None:
        try:
            model.load_weights(weights)
        except Exception as exc:  # h5py/keras raise many kinds for a wrong or broken file
            raise ConvertError(f"weights {weights} do not fit {arch}: {str(exc).splitlines()[0]}") from None
    base = {"labels": list(labels), "macs": count_macs(model), "params": int(model.count_params()),
            "preprocessing": dict(preprocessing, pixel_scale=PIXEL_SCALE),
            "accuracy": {}, "training": {"arch": arch, "weights": str(weights) if weights else None,
                                         "trained": weights is not None}}
    for precision in missing:
        name = f"{stem}-{precision}"
        data = to_tflite(model, calibration if precision == "int8" else None)
        write_model(paths[precision], data, dict(base, name=name, version=name))
    return paths
