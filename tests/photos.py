"""Real photos for tests that need no ../shared data: scikit-image's sample photos."""
from __future__ import annotations

import cv2
import numpy as np


def astronaut() -> np.ndarray:
    """A 512x512 BGR photo of one person, her face about 90 px wide at (178, 63)."""
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def coffee() -> np.ndarray:
    """A real 640x480 scene with no face in it."""
    from skimage import data

    return cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), (640, 480))


def place(photo: np.ndarray, background: np.ndarray, scale: float, at: tuple[int, int]) -> np.ndarray:
    """``background`` with ``photo`` shrunk by ``scale`` pasted at ``at`` (cut at the frame edge)."""
    frame = background.copy()
    small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    x, y = at
    h, w = min(small.shape[0], frame.shape[0] - y), min(small.shape[1], frame.shape[1] - x)
    frame[y:y + h, x:x + w] = small[:h, :w]
    return frame
