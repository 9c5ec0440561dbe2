"""Synthetic 640x480 scenes and videos built from face crops.

Tests, demos and the benchmark need frames with real faces at a known time
and expression; pasting 48x48 FER faces, upscaled 2-4x, into a plain frame
gives exactly that without a camera.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class Segment:
    """``seconds`` of one face (or of no face when ``face`` is None)."""

    face: np.ndarray | None
    seconds: float


def compose_frame(face: np.ndarray | None, size: tuple[int, int] = (640, 480), upscale: float = 3.0,
                  centre: tuple[float, float] = (0.5, 0.45), background: int = 120) -> np.ndarray:
    """A BGR frame of ``size`` with ``face`` (grey uint8) pasted, upscaled, at ``centre``."""
    w, h = size
    frame = np.full((h, w, 3), background, np.uint8)
    # A soft vertical gradient so the frame is not perfectly flat, like a wall.
    frame[:] = (np.linspace(-20, 20, h)[:, None, None] + background).clip(0, 255).astype(np.uint8)
    if face is not None:
        side = int(round(face.shape[0] * upscale))
        big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
        x0 = int(centre[0] * w - side / 2)
        y0 = int(centre[1] * h - side / 2)
        x0, y0 = min(max(x0, 0), w - side), min(max(y0, 0), h - side)
        frame[y0:y0 + side, x0:x0 + side] = big[..., None]
    return frame


def scene_frames(segments: Sequence[Segment], fps: float, size: tuple[int, int] = (640, 480),
                 upscale: float = 3.0) -> Iterable[np.ndarray]:
    """Frames of ``segments`` in order, ``fps`` per second."""
    for seg in segments:
        frame = compose_frame(seg.face, size, upscale)
        for _ in range(max(int(round(seg.seconds * fps)), 1)):
            yield frame


def write_mjpg(path: Path, frames: Iterable[np.ndarray], fps: float, size: tuple[int, int]) -> int:
    """Encode ``frames`` (BGR, ``size``) as an MJPG AVI, decodable by any OpenCV build; returns frames written."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    if not writer.isOpened():
        raise OSError(f"cannot write video {path}")
    n = 0
    try:
        for frame in frames:
            writer.write(frame)
            n += 1
    finally:
        writer.release()
    return n


def write_video(path: Path, segments: Sequence[Segment], fps: float = 15.0,
                size: tuple[int, int] = (640, 480), upscale: float = 3.0) -> int:
    """Encode ``segments`` as an MJPG AVI; returns frames written."""
    return write_mjpg(path, scene_frames(segments, fps, size, upscale), fps, size)
