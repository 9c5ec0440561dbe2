"""Cheap per-batch augmentation in NumPy/OpenCV for 48x48 grey faces.

Runs in a worker thread beside the TensorFlow step (OpenCV releases the
GIL), so it costs the 2-core training box almost nothing: one ``warpAffine``
per face plus vectorised flips, brightness/contrast and random erasing.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from device.preprocess import PIXEL_SCALE, scale_pixels


@dataclass(frozen=True)
class AugmentParams:
    flip: bool = True
    rotate_deg: float = 10.0
    shift: float = 0.08
    zoom: float = 0.10
    brightness: float = 0.15
    contrast: float = 0.20
    erase_prob: float = 0.35
    erase_max: float = 0.30  # max side of the erased box, as a fraction of the face


def augment(faces: np.ndarray, rng: np.random.Generator, p: AugmentParams = AugmentParams()) -> np.ndarray:
    """(N, S, S) uint8 preprocessed faces -> (N, S, S, 1) float32 in [0, 1], randomly altered."""
    n, size = faces.shape[0], faces.shape[1]
    centre = (size / 2.0, size / 2.0)
    out = np.empty((n, size, size), np.float32)
    angles = rng.uniform(-p.rotate_deg, p.rotate_deg, n)
    scales = rng.uniform(1 - p.zoom, 1 + p.zoom, n)
    shifts = rng.uniform(-p.shift, p.shift, (n, 2)) * size
    flips = rng.random(n) < 0.5 if p.flip else np.zeros(n, bool)
    for i in range(n):
        m = cv2.getRotationMatrix2D(centre, angles[i], scales[i])
        m[:, 2] += shifts[i]
        face = faces[i, :, ::-1] if flips[i] else faces[i]
        out[i] = cv2.warpAffine(face, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    out *= PIXEL_SCALE
    contrast = rng.uniform(1 - p.contrast, 1 + p.contrast, (n, 1, 1)).astype(np.float32)
    brightness = rng.uniform(-p.brightness, p.brightness, (n, 1, 1)).astype(np.float32)
    out = (out - 0.5) * contrast + 0.5 + brightness
    for i in np.flatnonzero(rng.random(n) < p.erase_prob):
        eh, ew = (rng.uniform(0.1, p.erase_max, 2) * size).astype(int) + 1
        y, x = rng.integers(0, size - eh), rng.integers(0, size - ew)
        out[i, y:y + eh, x:x + ew] = rng.random()
    np.clip(out, 0.0, 1.0, out=out)
    return out[..., None]


def cutmix(faces: np.ndarray, targets: np.ndarray, rng: np.random.Generator,
           prob: float) -> tuple[np.ndarray, np.ndarray]:
    """CutMix (Yun et al., 2019) within a batch: a share ``prob`` of the faces get a box
    copied from the same place in another face of the batch, and their target row
    is mixed with the donor's by the area pasted.

    Why: the shipped network over-fits (76 % on augmented training faces, 67 % on
    valid), and FER faces are aligned, so a pasted box swaps like for like (a mouth
    for a mouth) and the model has to read every region. With ``prob`` 0 no random
    numbers are drawn, so runs without CutMix keep their batches. Takes (N, S, S, 1)
    float faces and (N, classes) target rows summing to 1 (smoothed one-hot
    labels); returns new arrays of the same shapes, rows still summing to 1.
    """
    targets = np.asarray(targets, np.float32)
    if prob <= 0:
        return faces, targets
    n, size = faces.shape[0], faces.shape[1]
    chosen = np.flatnonzero(rng.random(n) < prob)
    donors = rng.integers(0, n, len(chosen))
    sides = np.rint(np.sqrt(1.0 - rng.uniform(0.0, 1.0, len(chosen))) * size).astype(int)
    centres = rng.integers(0, size, (len(chosen), 2))
    mixed, mixed_targets = faces.copy(), targets.copy()
    for i, j, side, (cy, cx) in zip(chosen, donors, sides, centres, strict=True):
        y0, y1 = max(cy - side // 2, 0), min(cy - side // 2 + side, size)
        x0, x1 = max(cx - side // 2, 0), min(cx - side // 2 + side, size)
        mixed[i, y0:y1, x0:x1] = faces[j, y0:y1, x0:x1]
        share = (y1 - y0) * (x1 - x0) / size ** 2
        mixed_targets[i] = (1.0 - share) * targets[i] + share * targets[j]
    return mixed, mixed_targets


def to_input(faces: np.ndarray) -> np.ndarray:
    """(N, S, S) uint8 preprocessed faces -> (N, S, S, 1) float32 in [0, 1], unaltered."""
    return scale_pixels(faces)[..., None]
