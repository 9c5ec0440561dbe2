"""Frame sources: Pi camera, OpenCV camera, video file, or a folder of images.

All of them yield :class:`~device.frames.Frame` with a time ``t`` in seconds.
Live cameras stamp frames with the monotonic clock; files carry their own
timestamps, so a recorded video runs as fast as the machine allows and gives
the same announcements on every run (the frame reader can pace it instead).
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from device.frames import Frame

# OpenCV's own warnings ("can't open camera by index") duplicate our one-line errors.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp"}


class CaptureError(RuntimeError):
    """No frames can be had from the source; one line for the log."""


class FrameSource(Protocol):
    """Anything that yields frames and can be closed."""

    name: str
    live: bool

    def frames(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


class VideoFileSource:
    """A video file decoded by OpenCV; ``t`` is the file's own presentation time."""

    live = False

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        self.cap = cv2.VideoCapture(str(path))
        if not self.cap.isOpened():
            raise CaptureError(f"video file {path} cannot be opened")
        self.fps = self.cap.get(cv2.CAP_PROP_FPS) or 0.0

    def frames(self) -> Iterator[Frame]:
        index = 0
        while True:
            ok, image = self.cap.read()
            if not ok:
                return
            t = self.cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if t <= 0 and index and self.fps > 0:
                t = index / self.fps
            yield Frame(image, t, index)
            index += 1

    def close(self) -> None:
        self.cap.release()


class ImageFolderSource:
    """Images of a folder in name order (or one image file), ``1/fps`` seconds apart."""

    live = False

    def __init__(self, path: Path, fps: float) -> None:
        self.name = str(path)
        if path.is_dir():
            self.paths = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            self.paths = [path]
        if not self.paths:
            raise CaptureError(f"image folder {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self.fps = fps

    def frames(self) -> Iterator[Frame]:
        for index, path in enumerate(self.paths):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            t = index / self.fps
            # An unreadable file becomes an empty frame, which the loop counts and skips.
            yield Frame(image if image is not None else np.empty((0, 0, 3), np.uint8), t, index)

    def close(self) -> None:
        pass


class CameraSource:
    """A V4L2 camera through OpenCV (USB webcam, DeepLens, Pi camera via V4L2)."""

    live = True

    def __init__(self, device: int | str, width: int, height: int, fps: float) -> None:
        self.name = f"/dev/video{device}" if isinstance(device, int) else str(device)
        self.cap = cv2.VideoCapture(device, cv2.CAP_V4L2)
        if not self.cap.isOpened():
            self.cap.release()
            raise CaptureError(f"camera {self.name} cannot be opened")
        self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self.cap.set(cv2.CAP_PROP_FPS, fps)
        self.cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # always the newest frame, never a stale queue

    def frames(self) -> Iterator[Frame]:
        index = 0
        while True:
            ok, image = self.cap.read()
            if not ok:
                raise CaptureError(f"camera {self.name} stopped delivering frames")
            yield Frame(image, time.monotonic(), index)
            index += 1

    def close(self) -> None:
        self.cap.release()


class PiCameraSource:
    """The Raspberry Pi camera through picamera2 (Raspberry Pi OS only)."""

    live = True

    def __init__(self, width: int, height: int, fps: float) -> None:
        try:
            from picamera2 import Picamera2  # libcamera via apt; absent elsewhere
        except ImportError:
            raise CaptureError("picamera2 is not installed (Raspberry Pi OS: apt install python3-picamera2)") from None
        self.name = "picamera2"
        try:
            self.cam = Picamera2()
            config = self.cam.create_video_configuration(
                main={"size": (width, height), "format": "RGB888"},
                controls={"FrameRate": fps}, buffer_count=2)
            self.cam.configure(config)
            self.cam.start()
        except Exception as exc:  # libcamera raises RuntimeError/IndexError for "no camera"
            raise CaptureError(f"Pi camera cannot be started: {exc}") from None

    def frames(self) -> Iterator[Frame]:
        index = 0
        while True:
            try:
                image = self.cam.capture_array("main")  # RGB888 is BGR byte order in numpy
            except Exception as exc:
                raise CaptureError(f"Pi camera stopped delivering frames: {exc}") from None
            yield Frame(image, time.monotonic(), index)
            index += 1

    def close(self) -> None:
        self.cam.stop()
        self.cam.close()


def _camera_device(spec: str) -> int | str | None:
    if spec.isdigit():
        return int(spec)
    if spec.startswith("/dev/video"):
        return spec
    return None


def open_source(spec: str, width: int = 640, height: int = 480, fps: float = 15.0) -> FrameSource:
    """Open the source named by ``spec`` (see ``[camera] source`` in the config)."""
    if spec == "auto":
        tried = []
        for attempt in (lambda: PiCameraSource(width, height, fps),
                        lambda: CameraSource(0, width, height, fps)):
            try:
                return attempt()
            except CaptureError as exc:
                tried.append(str(exc))
        raise CaptureError("no camera found; tried: " + "; ".join(tried))
    if spec == "picamera":
        return PiCameraSource(width, height, fps)
    device = _camera_device(spec)
    if device is not None:
        return CameraSource(device, width, height, fps)
    path = Path(spec)
    if path.is_dir() or (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES):
        return ImageFolderSource(path, fps)
    if path.is_file():
        return VideoFileSource(path)
    raise CaptureError(f"source {spec!r} is not a camera, a video file or an image folder")
