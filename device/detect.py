"""Face detection with OpenCV's Haar frontal-face cascade, as in the seed study.

The cascade runs on a downscaled grey copy of the frame (``scale``), which
is where nearly all of the detector's cost goes; the box is mapped back to
full-frame pixels so the classifier crops from the sharp original.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from device.frames import FaceBox
from device.preprocess import to_grey

DEFAULT_CASCADE = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"


class FaceDetector:
    """Finds the largest frontal face in a frame."""

    def __init__(self, scale: float = 0.5, min_face: int = 60, scale_factor: float = 1.15,
                 min_neighbors: int = 5, cascade: Path = DEFAULT_CASCADE) -> None:
        self.cascade = cv2.CascadeClassifier(str(cascade))
        if self.cascade.empty():
            raise RuntimeError(f"Haar cascade {cascade} cannot be loaded")
        self.scale = scale
        self.min_face = min_face
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors

    def detect(self, image: np.ndarray) -> FaceBox | None:
        """The largest face in ``image`` (BGR or grey), or None."""
        h, w = image.shape[:2]
        small_size = (max(int(w * self.scale), 1), max(int(h * self.scale), 1))
        small = cv2.resize(image, small_size, interpolation=cv2.INTER_AREA) if self.scale != 1.0 else image
        grey = cv2.equalizeHist(to_grey(small))
        side = max(int(self.min_face * self.scale), 12)
        faces = self.cascade.detectMultiScale(grey, scaleFactor=self.scale_factor,
                                              minNeighbors=self.min_neighbors, minSize=(side, side))
        if len(faces) == 0:
            return None
        x, y, fw, fh = max(faces, key=lambda f: f[2] * f[3])
        k = 1.0 / self.scale
        return FaceBox(int(x * k), int(y * k), int(fw * k), int(fh * k))
