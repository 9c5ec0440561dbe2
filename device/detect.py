"""Face detectors: YuNet (learned, with landmarks; the default) and the Haar cascade.

Both answer the same question in the same shape -- every face in an image,
as :class:`~core.frames.FaceBox` records in that image's pixels -- so the
tracker, the benchmark and ``facecue-model eval --detect`` treat them alike. Each
runs on a copy of the image shrunk by ``scale`` (where nearly all of the cost
goes) and maps the boxes back to the sharp original, which the crop uses.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from core.frames import FaceBox
from device.classify import sha256_file
from device.preprocess import to_grey
from models import MODELS_DIR

DEFAULT_CASCADE = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
YUNET_MODEL = MODELS_DIR / "face_detection_yunet_2026may.onnx"
# The shipped file's: a card that rotted it, or a bad copy, is refused before OpenCV parses it
# (some damaged files load and then fail on the first frame, or find nothing).
YUNET_SHA256 = "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0"
METHODS = ("yunet", "haar")


class DetectorError(RuntimeError):
    """A detector that cannot be loaded; the message is one line for the log."""


class FaceDetector(Protocol):
    """What the tracker needs of a detector."""

    name: str
    default_scale: float

    def detect_all(self, image: np.ndarray, scale: float, min_face: int) -> list[FaceBox]:
        """Every face at least ``min_face`` px wide in ``image``, searched at ``scale``."""
        ...


def shrink(image: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return image
    h, w = image.shape[:2]
    return cv2.resize(image, (max(int(w * scale), 1), max(int(h * scale), 1)), interpolation=cv2.INTER_AREA)


def largest(boxes: list[FaceBox]) -> FaceBox | None:
    """The face the device speaks about: the biggest, i.e. the nearest."""
    return max(boxes, key=lambda b: b.area) if boxes else None


class HaarDetector:
    """OpenCV's frontal-face cascade, as in the seed study: no landmarks, so the
    crop falls back to the box with a margin."""

    name = "haar"
    default_scale = 0.5

    def __init__(self, scale_factor: float = 1.15, min_neighbors: int = 5, cascade: Path = DEFAULT_CASCADE) -> None:
        try:
            self.cascade = cv2.CascadeClassifier(str(cascade))
        except (cv2.error, SystemError):  # OpenCV raises on a file that is not a cascade
            raise DetectorError(f"Haar cascade {cascade} cannot be loaded") from None
        if self.cascade.empty():
            raise DetectorError(f"Haar cascade {cascade} cannot be loaded")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors

    def detect_all(self, image: np.ndarray, scale: float, min_face: int) -> list[FaceBox]:
        grey = cv2.equalizeHist(to_grey(shrink(image, scale)))
        side = max(int(min_face * scale), 12)
        faces = self.cascade.detectMultiScale(grey, scaleFactor=self.scale_factor,
                                              minNeighbors=self.min_neighbors, minSize=(side, side))
        k = 1.0 / scale
        return [FaceBox(int(x * k), int(y * k), int(w * k), int(h * k)) for x, y, w, h in faces]


class YuNetDetector:
    """YuNet (OpenCV model zoo, MIT) on OpenCV's DNN module: a box, five landmarks
    and a score per face, and far fewer false faces on textured backgrounds."""

    name = "yunet"
    default_scale = 1.0
    NMS_THRESHOLD = 0.3
    TOP_K = 20

    def __init__(self, score_threshold: float = 0.8, model: Path = YUNET_MODEL) -> None:
        if not Path(model).is_file():
            raise DetectorError(f"YuNet model {model} not found")
        if Path(model) == YUNET_MODEL:
            actual = sha256_file(model)
            if actual != YUNET_SHA256:
                raise DetectorError(f"YuNet model {model} sha256 {actual[:12]}... is not the shipped file's")
        self.model = Path(model)
        self.score_threshold = score_threshold
        # One network per input size: switching a network's size costs more than a small search.
        self._nets: dict[tuple[int, int], cv2.FaceDetectorYN] = {}
        self._net((160, 160))  # load now: a broken file fails at start, not at the first frame

    def _net(self, size: tuple[int, int]) -> cv2.FaceDetectorYN:
        net = self._nets.get(size)
        if net is None:
            if len(self._nets) >= 12:  # the frame, 4 rescan sizes and the search squares; forget others
                self._nets.clear()
            try:
                net = cv2.FaceDetectorYN.create(str(self.model), "", size, self.score_threshold,
                                                self.NMS_THRESHOLD, self.TOP_K)
            except cv2.error as exc:
                raise DetectorError(f"YuNet model {self.model} cannot be loaded: {exc.msg.strip()}") from None
            self._nets[size] = net
        return net

    def detect_all(self, image: np.ndarray, scale: float, min_face: int) -> list[FaceBox]:
        small = shrink(image, scale)
        if small.ndim == 2 or small.shape[2] == 1:
            small = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
        h, w = small.shape[:2]
        _, faces = self._net((w, h)).detect(small)
        if faces is None:
            return []
        k = 1.0 / scale
        boxes = []
        for f in faces:
            x, y, fw, fh = (float(v) * k for v in f[:4])
            if fw < min_face:
                continue
            points = tuple((float(f[4 + 2 * i]) * k, float(f[5 + 2 * i]) * k) for i in range(5))
            boxes.append(FaceBox(int(round(x)), int(round(y)), int(round(fw)), int(round(fh)), points, float(f[14])))
        return boxes


def make_detector(method: str, *, score_threshold: float = 0.8, scale_factor: float = 1.15,
                  min_neighbors: int = 5) -> FaceDetector:
    """The detector ``[detect] method`` names."""
    if method == "yunet":
        return YuNetDetector(score_threshold)
    if method == "haar":
        return HaarDetector(scale_factor, min_neighbors)
    raise DetectorError(f"unknown face detector {method!r}; known: {', '.join(METHODS)}")
