"""Expression classification with the LiteRT interpreter on a shipped ``.tflite``.

Each model file ``NAME.tflite`` has ``NAME.json`` beside it (labels, input
spec, preprocessing parameters, version, sha256, accuracy). The same class
serves the live loop, ``facecue-model eval``, the benchmark and the sync smoke
check, so all of them run exactly the interpreter path the wearer gets.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np

from core.frames import LANDMARKS, FaceBox, Prediction
from core.quiet import native_stderr_to_debug
from device.preprocess import CROPS, PIXEL_SCALE, preprocess_face
from device.reading import Refused, loads_json, read_regular

REQUIRED_KEYS = ("version", "labels", "sha256", "input", "preprocessing")
MAX_METADATA_BYTES = 1 << 20  # the shipped model's JSON is 15 KB
MAX_MODEL_BYTES = 64 << 20  # far above any model a Pi can run; bounds what sync downloads


class ModelError(RuntimeError):
    """A model that cannot be served; the message is one line for the log."""


def load_interpreter_class():
    """LiteRT's interpreter, falling back to the older tflite-runtime wheel."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise ModelError("no TFLite runtime: pip install ai-edge-litert (or tflite-runtime)") from None
    return Interpreter


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return sha256_of(f)


def sha256_of(f: BinaryIO) -> str:
    """The sha256 of what is left to read in ``f``."""
    h = hashlib.sha256()
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
    return h.hexdigest()


def metadata_path(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".json")


@dataclass(frozen=True)
class ModelInfo:
    """What the JSON beside a model says about it."""

    path: Path
    meta: dict[str, Any] = field(repr=False)

    @property
    def version(self) -> str:
        return str(self.meta["version"])

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.meta["labels"])

    @cached_property
    def preprocessing(self) -> dict[str, Any]:
        """Keyword arguments of :func:`preprocess_face` for this model, read once (every
        frame uses them). A model made before the aligned crop says no ``crop`` and gets
        the box crop it was made for."""
        p = self.meta["preprocessing"]
        params = {"size": int(p.get("size", 48)), "margin": float(p.get("margin", 0.1)),
                  "equalize": bool(p.get("equalize", True)), "crop": str(p.get("crop", "box"))}
        if "template" in p:
            params["template"] = tuple((float(x), float(y)) for x, y in p["template"])
        return params

    @cached_property
    def temperature(self) -> float:
        """The softmax temperature fitted on validation by ``tools.eval.calibrate``, so that a
        top probability of 0.8 is right about 80 % of the time and ``[decide]
        min_confidence`` means what it says; 1.0 (as trained) for an uncalibrated model."""
        return float(self.meta.get("calibration", {}).get("temperature", 1.0))


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities as the network would give them with its logits divided by
    ``temperature``: softmax(log p / T) is p^(1/T) renormalised, so the int8 file
    needs no change. The top class never changes; an all-zero row stays zero."""
    if temperature == 1.0:
        return probs
    powered = np.power(np.maximum(probs, 0.0), np.float32(1.0 / temperature))
    total = powered.sum(axis=-1, keepdims=True)
    return np.divide(powered, total, out=np.zeros_like(powered), where=total > 0)


def read_model_info(model_path: str | Path, verify_checksum: bool = True) -> ModelInfo:
    """Read and check the JSON beside ``model_path`` (and the file's sha256)."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise ModelError(f"model file {model_path} not found")
    meta_file = metadata_path(model_path)
    try:
        raw = read_regular(meta_file, MAX_METADATA_BYTES)
    except FileNotFoundError:
        raise ModelError(f"model metadata {meta_file} not found") from None
    except OSError as exc:
        raise ModelError(f"model metadata {meta_file} unreadable: {exc.strerror}") from None
    except Refused as exc:
        raise ModelError(f"model metadata {exc}") from None
    try:
        meta = loads_json(raw)
    except ValueError as exc:  # too deep, json's errors and UnicodeDecodeError
        raise ModelError(f"model metadata {meta_file} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ModelError(f"model metadata {meta_file} is not a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelError(f"model metadata {meta_file} lacks {', '.join(missing)}")
    if verify_checksum:
        check_sha256(model_path, sha256_file(model_path), meta["sha256"])
    labels = meta["labels"]
    if not (isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)
            and len(set(labels)) == len(labels)):
        raise ModelError(f"model metadata {meta_file} labels must be a list of distinct names, got {labels!r:.80}")
    if not isinstance(meta["version"], str):
        raise ModelError(f"model metadata {meta_file} version must be a string, got {meta['version']!r:.40}")
    info = ModelInfo(model_path, meta)
    check_preprocessing(info, meta_file)
    check_calibration(info, meta_file)
    return info


def check_sha256(model_path: Path, actual: str, expected: object) -> None:
    """The model's bytes are the ones its metadata names."""
    if actual != expected:
        raise ModelError(f"model {model_path} sha256 {actual[:12]}... does not match its metadata")


def check_preprocessing(info: ModelInfo, meta_file: Path) -> None:
    """Refuse, at load time, preprocessing that would only fail at the first face."""
    try:
        p = info.preprocessing
    except (AttributeError, TypeError, ValueError) as exc:
        raise ModelError(f"model metadata {meta_file} has malformed preprocessing ({exc})") from None
    where = f"model metadata {meta_file} preprocessing"
    if not 8 <= p["size"] <= 512:
        raise ModelError(f"{where} size must be 8..512, got {p['size']}")
    if not (math.isfinite(p["margin"]) and 0.0 <= p["margin"] <= 1.0):
        raise ModelError(f"{where} margin must be 0..1, got {p['margin']}")
    if p["crop"] not in CROPS:
        raise ModelError(f"{where} crop must be one of {', '.join(CROPS)}, got {p['crop']!r}")
    template = p.get("template")
    if template is not None and (len(template) != len(LANDMARKS) or not all(
            math.isfinite(v) and 0.0 <= v <= 1.0 for point in template for v in point)):
        raise ModelError(f"{where} template must be {len(LANDMARKS)} [x, y] points within 0..1")


TEMPERATURE_RANGE = (0.1, 10.0)  # far outside any fitted value; beyond it the file is broken


def check_calibration(info: ModelInfo, meta_file: Path) -> None:
    """Refuse a calibration that would make every probability 0, 1 or NaN."""
    calibration = info.meta.get("calibration", {})
    try:
        t = info.temperature
    except (AttributeError, TypeError, ValueError):
        raise ModelError(f"model metadata {meta_file} has malformed calibration {calibration!r}") from None
    low, high = TEMPERATURE_RANGE
    if not (math.isfinite(t) and low <= t <= high):
        raise ModelError(f"model metadata {meta_file} calibration temperature must be {low}..{high}, got {t}")


# How far from 1 a row of probabilities may sum: int8 outputs dequantise to within
# about 7 * scale / 2 of 1; a broken model is far outside (NaN, 0).
PROBABILITY_SUM_TOLERANCE = 0.05


class Classifier:
    """A loaded model: preprocessed 48x48 faces in, :class:`Prediction` out."""

    def __init__(self, model_path: str | Path, num_threads: int = 1, verify_checksum: bool = True,
                 calibrated: bool = True, vet: Callable[[str], None] | None = None) -> None:
        """``calibrated=False`` gives the network's own probabilities (for fitting a new
        temperature); everything else uses the model's calibration.

        ``vet`` is called with the sha256 of the bytes about to be mapped, once they
        match the metadata and before the interpreter sees them, and may raise
        ModelError: the model slot holds that one hash against the signed manifest
        and runs the smoke faces in a child there, so a load reads the file once."""
        self.info = read_model_info(model_path, verify_checksum=False)
        self.temperature = self.info.temperature if calibrated else 1.0
        Interpreter = load_interpreter_class()
        try:
            model = open(self.info.path, "rb")
        except OSError as exc:
            raise ModelError(f"model {self.info.path} unreadable: {exc.strerror}") from None
        # The interpreter maps the very file that was hashed, through the open descriptor:
        # a file swapped in at that path between the check and the load cannot slip in.
        with model:
            if verify_checksum or vet is not None:
                sha256 = sha256_of(model)
                check_sha256(self.info.path, sha256, self.info.meta["sha256"])
                if vet is not None:
                    vet(sha256)
            try:
                with native_stderr_to_debug("litert"):  # its XNNPACK banner, printed at the first allocate
                    self.interpreter = Interpreter(model_path=f"/proc/self/fd/{model.fileno()}",
                                                   num_threads=num_threads)
                    self.interpreter.allocate_tensors()
            except Exception as exc:  # the runtime raises ValueError/RuntimeError for bad files
                raise ModelError(f"model {self.info.path} failed to load: {str(exc).splitlines()[0]}") from None
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        size = self.info.preprocessing["size"]
        if tuple(self._input["shape"][1:3]) != (size, size):
            raise ModelError(f"model input {list(self._input['shape'])} does not match preprocessing size {size}")
        if int(self._output["shape"][-1]) != len(self.info.labels):
            raise ModelError(f"model has {self._output['shape'][-1]} outputs but {len(self.info.labels)} labels")
        self._batch = int(self._input["shape"][0])

    @property
    def labels(self) -> tuple[str, ...]:
        return self.info.labels

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self._input["dtype"])

    def preprocess(self, image: np.ndarray, box: FaceBox | None = None) -> np.ndarray:
        """Frame (or face crop) -> the 48x48 uint8 face this model expects."""
        return preprocess_face(image, box, **self.info.preprocessing)

    def _to_input(self, faces: np.ndarray) -> np.ndarray:
        x = faces.astype(np.float32) * np.float32(PIXEL_SCALE)
        if self.input_dtype != np.float32:
            scale, zero = self._input["quantization"]
            info = np.iinfo(self.input_dtype)
            x = np.clip(np.round(x / scale) + zero, info.min, info.max).astype(self.input_dtype)
        return x[..., None]

    def _from_output(self, y: np.ndarray) -> np.ndarray:
        if y.dtype != np.float32:
            scale, zero = self._output["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y

    def probabilities(self, faces: np.ndarray) -> np.ndarray:
        """(N, S, S) uint8 preprocessed faces -> (N, classes) float32 probabilities."""
        faces = np.asarray(faces)
        if faces.ndim == 2:
            faces = faces[None]
        n = len(faces)
        if n != self._batch:
            self.interpreter.resize_tensor_input(self._input["index"], [n, *self._input["shape"][1:]])
            self.interpreter.allocate_tensors()
            self._input = self.interpreter.get_input_details()[0]
            self._output = self.interpreter.get_output_details()[0]
            self._batch = n
        self.interpreter.set_tensor(self._input["index"], self._to_input(faces))
        self.interpreter.invoke()
        return apply_temperature(self._from_output(self.interpreter.get_tensor(self._output["index"])),
                                 self.temperature)

    def classify(self, face: np.ndarray) -> Prediction:
        """One preprocessed face -> probabilities over :attr:`labels`.

        Raises ModelError when the row is no probability distribution (NaN
        weights give NaN, then all zeros after calibration): fed to the decider,
        such a row never reaches ``min_confidence``, and the device would go
        mute without a word.
        """
        probs = self.probabilities(face)[0]
        total = float(probs.sum())
        if not abs(total - 1.0) <= PROBABILITY_SUM_TOLERANCE:  # also catches NaN
            raise ModelError(f"model {self.info.version} gave no probabilities (row sum {total:.3g})")
        return Prediction(probs, self.labels)
