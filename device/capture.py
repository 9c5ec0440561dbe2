"""Frame sources: Pi camera, OpenCV camera, video file, or a folder of images.

All of them yield :class:`~core.frames.Frame` with a time ``t`` in seconds.
Live cameras stamp frames with the monotonic clock; files carry their own
timestamps, so a recorded video runs as fast as the machine allows and gives
the same announcements on every run (the frame reader can pace it instead).
"""
from __future__ import annotations

import logging
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

import cv2
import numpy as np

from core.frames import Frame
from core.quiet import native_stderr_to_debug

# OpenCV's own warnings ("can't open camera by index") duplicate our one-line errors.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

log = logging.getLogger("facecue")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp"}

# The largest frame a file source may hold: 4096x4096 pixels (16.8 megapixels) in any
# shape. That covers every real camera frame this device could be shown (4K UHD video
# is 8.3 MP, the Pi HQ camera 12.3 MP, Camera Module 3 11.9 MP) while keeping one BGR
# frame under 50 MB; a 30000x30000 PNG of 876 KB would otherwise decode into 2.7 GB.
MAX_FRAME_PIXELS = 4096 * 4096
# A video that stops this many frames (or 2%, whichever is more) before the count in its
# header is damaged, not merely rounded: container frame counts can be a frame or two off.
SHORT_VIDEO_MARGIN = 2


class CaptureError(RuntimeError):
    """No frames can be had from the source; one line for the log."""


def _too_large(what: str, width: int, height: int) -> CaptureError | None:
    """The one-line refusal for a frame over :data:`MAX_FRAME_PIXELS`, else None."""
    if width * height <= MAX_FRAME_PIXELS:
        return None
    return CaptureError(f"{what} is {width}x{height} pixels; frames from files are limited to "
                        f"{MAX_FRAME_PIXELS / 1e6:.1f} megapixels (4096x4096)")


def _jpeg_size(f: BinaryIO) -> tuple[int, int] | None:
    """Width and height from the first start-of-frame segment, walking segment lengths
    (EXIF and ICC segments come first and can be tens of KB)."""
    f.seek(2)
    while True:
        marker = f.read(2)
        while len(marker) == 2 and marker[0] == 0xFF and marker[1] == 0xFF:  # fill bytes
            marker = marker[1:] + f.read(1)
        if len(marker) < 2 or marker[0] != 0xFF:
            return None
        kind = marker[1]
        if 0xD0 <= kind <= 0xD7 or kind == 0x01:  # markers without a length
            continue
        head = f.read(2)
        if len(head) < 2:
            return None
        length = struct.unpack(">H", head)[0]
        if 0xC0 <= kind <= 0xCF and kind not in (0xC4, 0xC8, 0xCC):
            body = f.read(5)
            if len(body) < 5:
                return None
            height, width = struct.unpack(">HH", body[1:5])
            return width, height
        if length < 2:
            return None
        f.seek(length - 2, 1)


def _tiff_size(f: BinaryIO, order: str) -> tuple[int, int] | None:
    """ImageWidth (256) and ImageLength (257) from the first IFD, the page OpenCV reads."""
    f.seek(4)
    (offset,) = struct.unpack(order + "I", f.read(4))
    f.seek(offset)
    count_bytes = f.read(2)
    if len(count_bytes) < 2:
        return None
    size: dict[int, int] = {}
    for _ in range(struct.unpack(order + "H", count_bytes)[0]):
        entry = f.read(12)
        if len(entry) < 12:
            return None
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):  # type 3 is SHORT, in the first two bytes of the value; else LONG
            size[tag] = struct.unpack(order + "H", entry[8:10])[0] if kind == 3 else struct.unpack(
                order + "I", entry[8:12])[0]
    return (size[256], size[257]) if len(size) == 2 else None


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) read from the image file's header, without decoding it.

    OpenCV's ``imread`` allocates the whole frame the header asks for before it finds
    out whether the data is there, so the size must be known first. The format is told
    by content, as OpenCV does, not by the name. None when the header is not one of
    PNG, JPEG, BMP, PGM/PPM, TIFF or WebP, or is cut short: such a file is not decoded.
    """
    with open(path, "rb") as f:
        head = f.read(32)
        try:
            if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
                return struct.unpack(">II", head[16:24])
            if head.startswith(b"\xff\xd8"):
                return _jpeg_size(f)
            if head.startswith(b"BM"):
                width, height = struct.unpack("<ii", head[18:26])
                return abs(width), abs(height)  # a negative height means top-down rows
            if head[:2] in (b"P2", b"P3", b"P5", b"P6"):
                f.seek(2)
                fields = []
                for line in f.read(1024).split(b"\n"):
                    fields += line.split(b"#")[0].split()
                    if len(fields) >= 2:
                        return int(fields[0]), int(fields[1])
                return None
            if head[:4] in (b"II*\x00", b"MM\x00*"):
                return _tiff_size(f, "<" if head[:2] == b"II" else ">")
            if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
                chunk, data = head[12:16], head[20:32]
                if chunk == b"VP8 " and data[3:6] == b"\x9d\x01\x2a":
                    width, height = struct.unpack("<HH", data[6:10])
                    return width & 0x3FFF, height & 0x3FFF
                if chunk == b"VP8L" and data[0] == 0x2F:
                    bits = int.from_bytes(data[1:5], "little")
                    return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
                if chunk == b"VP8X":
                    return int.from_bytes(data[4:7], "little") + 1, int.from_bytes(data[7:10], "little") + 1
        except (struct.error, ValueError, IndexError):
            return None
    return None


class FrameSource(Protocol):
    """Anything that yields frames and can be closed."""

    name: str
    live: bool

    def frames(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


class VideoFileSource:
    """A video file decoded by OpenCV; ``t`` is the file's own presentation time.

    Frames over :data:`MAX_FRAME_PIXELS` are refused at open, from the stream's stated
    size (the frame reader's queue holds at most 64 MB of them). A named pipe (a video
    written into a FIFO by another program) is opened on the frame reader's thread, in
    :meth:`frames`: opening a pipe no one writes to waits like a read that never
    returns, so the loop sees it as a stuck source instead of hanging in the open.
    """

    live = False

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        self.path = path
        self.cap: cv2.VideoCapture | None = None
        self.fps = 0.0
        self.stated_frames = 0  # 0 or less: unknown
        if not path.is_fifo():
            # FFmpeg's own complaint about a file that is no video ("moov atom not found")
            # would come before our line; not for a pipe, whose open waits for a writer.
            with native_stderr_to_debug("ffmpeg"):
                self._open()

    def _open(self) -> None:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise CaptureError(f"video file {self.path} cannot be opened")
        refusal = _too_large(f"video file {self.path}", int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                             int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if refusal is not None:
            cap.release()
            raise refusal
        self.cap = cap
        self.fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        self.stated_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))

    def frames(self) -> Iterator[Frame]:
        """Every frame OpenCV can decode. OpenCV skips damaged frames and stops at a
        damaged index or a cut without a word, so an end well before the header's frame
        count is logged once; the frames read were served, so the run is not failed."""
        if self.cap is None:
            self._open()
        index = 0
        while True:
            ok, image = self.cap.read()
            if not ok:
                if self.stated_frames - index > max(SHORT_VIDEO_MARGIN, self.stated_frames // 50):
                    log.warning("video file %s gave %d of its %d frames (the file is damaged or cut short)",
                                self.name, index, self.stated_frames)
                return
            t = self.cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if t <= 0 and index and self.fps > 0:
                t = index / self.fps
            yield Frame(image, t, index)
            index += 1

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()


class ImageFolderSource:
    """Images of a folder in name order (or one image file), ``1/fps`` seconds apart.

    Only regular files are images: a FIFO, socket or device named ``a.jpg`` would block
    the read or never end. Each image's size is read from its header before it is
    decoded, and one over :data:`MAX_FRAME_PIXELS` ends the source with one line.
    """

    live = False

    def __init__(self, path: Path, fps: float) -> None:
        self.name = str(path)
        if path.is_dir():
            self.paths = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        else:
            self.paths = [path]
        if not self.paths:
            raise CaptureError(f"image folder {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self.fps = fps

    def frames(self) -> Iterator[Frame]:
        """One frame per image; an empty file (0 bytes, as a copy cut short leaves it) is
        said once and skipped, so it takes no frame's place or time."""
        index = 0
        for path in self.paths:
            if _is_empty(path):
                log.warning("image %s is empty (0 bytes): skipped, not a frame", path)
                continue
            yield Frame(self._read(path), index / self.fps, index)
            index += 1

    @staticmethod
    def _read(path: Path) -> np.ndarray:
        """The decoded image; an empty one, which the loop counts and skips, when the file
        is gone, not a regular file any more, or not an image whose size can be read."""
        try:
            size = image_size(path) if path.is_file() else None
        except OSError:
            size = None
        if size is None:
            return np.empty((0, 0, 3), np.uint8)
        refusal = _too_large(f"image {path}", *size)
        if refusal is not None:
            raise refusal
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        return image if image is not None else np.empty((0, 0, 3), np.uint8)

    def close(self) -> None:
        pass


def _is_empty(path: Path) -> bool:
    """A regular file of 0 bytes (one gone or unreadable is :meth:`ImageFolderSource._read`'s to say)."""
    try:
        return path.is_file() and path.stat().st_size == 0
    except OSError:
        return False


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
    if spec.isascii() and spec.isdigit():
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
    if path.is_file() or path.is_fifo():  # a named pipe carries a video stream, never images
        return VideoFileSource(path)
    if not path.exists():
        raise CaptureError(f"source {spec!r}: no such file or folder")
    raise CaptureError(f"source {spec!r} is not a camera, a video file or an image folder")
