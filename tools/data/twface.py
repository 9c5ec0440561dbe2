"""The ``twface`` photos (``../shared/data/twface``): real people's whole heads, for measuring only.

807 posed-expression photos of 19 performers, frontal, whole heads on a
plain wall. The project measures the device's path on them and never trains
on them or fits a number to them (``../shared/README.md``). This module reads
their table and puts a head into a real scene: the photo is cut out with a
soft ellipse, so the wall's corners and the photo's rectangle do not show, and
blended in at a given size.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools.data.scenes import SHARED, _blend, _resize

TWFACE_DIR = SHARED / "data" / "twface"
EDGE = 0.12  # the ellipse fades over this share of its radius


@dataclass(frozen=True)
class Photo:
    file: str  # relative to the twface folder
    label: str  # the posed expression
    performer: int


def read_table(folder: Path = TWFACE_DIR) -> list[Photo]:
    """Every row of ``labels.csv``; FileNotFoundError (one line) without the folder."""
    table = Path(folder) / "labels.csv"
    if not table.is_file():
        raise FileNotFoundError(f"{table} not found (twface lives in ../shared/data/twface)")
    with table.open(newline="") as f:
        return [Photo(row["file"], row["label"], int(row["performer"])) for row in csv.DictReader(f)]


def head_alpha(h: int, w: int) -> np.ndarray:
    """(h, w) float32 alpha: 1 inside the photo's inscribed ellipse, fading to 0 at its edge."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot((x + 0.5 - w / 2) / (w / 2), (y + 0.5 - h / 2) / (h / 2))
    t = np.clip((1.0 - r) / EDGE, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def paste_head(frame: np.ndarray, photo: np.ndarray, x: int, y: int, width: int) -> tuple[int, int]:
    """Blend ``photo`` into ``frame`` in place, ``width`` px wide with its corner at (x, y);
    returns the pasted (width, height)."""
    height = int(round(photo.shape[0] * width / photo.shape[1]))
    _blend(frame, _resize(photo, (width, height)), head_alpha(height, width), x, y)
    return width, height
