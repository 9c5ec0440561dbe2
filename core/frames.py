"""Plain data passed between the stages of the loop.

Each stage takes and returns these small records so that capture, detection,
classification and announcement can be tested, benchmarked and replaced one
at a time.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One picture from a source; ``t`` is seconds on the source's own clock."""

    image: np.ndarray  # HxWx3 BGR uint8, or HxW grey uint8
    t: float
    index: int


LANDMARKS = ("right_eye", "left_eye", "nose", "right_mouth", "left_mouth")
"""The five facial points a learned detector gives, in this order. "Right" is
the person's own right, which sits on the left of the image."""


@dataclass(frozen=True)
class FaceBox:
    """A face in frame pixel coordinates, with its :data:`LANDMARKS` when the
    detector gives them (the Haar cascade does not)."""

    x: int
    y: int
    w: int
    h: int
    landmarks: tuple[tuple[float, float], ...] | None = None
    score: float = 1.0

    @property
    def area(self) -> int:
        return self.w * self.h


@dataclass(frozen=True)
class Prediction:
    """Class probabilities for one face, in the model's label order."""

    probs: np.ndarray
    labels: tuple[str, ...]

    @property
    def best(self) -> tuple[str, float]:
        i = int(np.argmax(self.probs))
        return self.labels[i], float(self.probs[i])


@dataclass(frozen=True)
class Expression:
    """An expression worth telling the wearer, at frame time ``t``.

    ``hedged``: one the device is not sure of, said as "maybe ...".
    """

    label: str
    confidence: float
    t: float
    hedged: bool = False


class FaceChange(Enum):
    """What happened to the face in view; each value names its soft earcon."""

    ARRIVED = "face"
    LEFT = "noface"
    FACING = "facing"  # the followed face turned towards the wearer


@dataclass(frozen=True)
class FaceCue:
    """A change worth a soft earcon (when the config turns it on), at frame time ``t``."""

    change: FaceChange
    t: float


Announcement = Expression | FaceCue
"""What the per-frame stages hand the announcer: a word, or an earcon about the face."""
