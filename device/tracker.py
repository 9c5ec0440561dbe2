"""Finding the face frame after frame without searching the whole frame each time.

A full-frame search is the dearest step of the loop. Once a face is found
the tracker looks for it only in a small square around its last box, and
searches the full frame again when the face is lost. At least every
``rescan_every`` seconds it also searches the whole frame for a face at
least as large as the followed one, so that a second, nearer person is not
missed (the largest face is the one spoken about); that search runs on a
shrunk frame, since it only looks for large faces. With no face in view it
searches the full frame every ``idle_every`` seconds rather than on every
frame. All times are the frames' own clock, so a video file gives the
same boxes on every run.
"""
from __future__ import annotations

import cv2
import numpy as np

from core.frames import FaceBox
from device.config import DetectConfig
from device.detect import FaceDetector, largest, make_detector

ROI_MAX = 224  # px: the largest square the tracked face is searched in
ROI_FACES = 1.5  # the square's side in face-box sides (the box's longer side)
RESCAN_FACE = 64  # px: how wide the followed face is made for the periodic search for a nearer one
RESCAN_SCALES = (0.25, 0.375, 0.5, 0.75)  # a few frame sizes only: the detector keeps a network per size
# px: the longest side a search of the whole frame runs on. Faces the device speaks about
# are 50-250 px in a 640x480 frame; a larger frame is shrunk to this, since YuNet on a
# 4096 px frame needs over a gigabyte and seconds per search for no face it would miss.
SEARCH_MAX_SIDE = 1280


class FaceTracker:
    def __init__(self, detector: FaceDetector, *, scale: float = DetectConfig.scale,
                 min_face: int = DetectConfig.min_face, rescan_every: float = DetectConfig.rescan_every,
                 idle_every: float = DetectConfig.idle_every, tracking: bool = DetectConfig.tracking) -> None:
        self.detector = detector
        self.scale = scale or detector.default_scale
        self.min_face = min_face
        self.rescan_every = rescan_every
        self.idle_every = idle_every
        self.tracking = tracking
        self.box: FaceBox | None = None
        self._last_scan: float | None = None

    def reset(self) -> None:
        """Forget the face (a new source starts, or its clock went back)."""
        self.box = None
        self._last_scan = None

    def _frame_scale(self, image: np.ndarray, scale: float) -> float:
        """``scale``, or less where the frame would otherwise be searched above ``SEARCH_MAX_SIDE``."""
        return min(scale, SEARCH_MAX_SIDE / max(image.shape[:2]))

    def all_faces(self, image: np.ndarray) -> list[FaceBox]:
        """Every face of the whole ``image`` (one full search, no history): who is there."""
        return self.detector.detect_all(image, self._frame_scale(image, self.scale), self.min_face)

    def scan(self, image: np.ndarray) -> FaceBox | None:
        """The largest face of the whole ``image``: one photo, no history."""
        return largest(self.all_faces(image))

    def settle(self, image: np.ndarray) -> FaceBox | None:
        """The face the device settles on when it looks at ``image`` for a while: after the
        first frame's full search, every later frame's box comes from the search near it.
        Used to score photos (``facecue-model eval --detect``) as the device would see them."""
        self.reset()
        self.find(image, 0.0)
        box = self.find(image, 1.0 / 15)
        self.reset()
        return box

    def find(self, image: np.ndarray, t: float) -> FaceBox | None:
        """The face to speak about in the frame taken at ``t`` seconds, or None."""
        if not self.tracking:
            return self.scan(image)
        if self._last_scan is not None and t < self._last_scan:
            self.reset()
        since = None if self._last_scan is None else t - self._last_scan + 1e-6  # 3 frames of 1/15 s make 0.2 s
        if self.box is None or since is None:
            if since is not None and since < self.idle_every:
                return None
            return self._full_search(image, t)
        if since >= self.rescan_every:
            self._last_scan = t
            self.box = self._nearer_face(image, self.box) or self.box
        box = self._search_near(image, self.box)
        if box is None:  # lost: look everywhere at once
            return self._full_search(image, t)
        self.box = box
        return box

    def _full_search(self, image: np.ndarray, t: float) -> FaceBox | None:
        self.box = self.scan(image)
        self._last_scan = t
        return self.box

    def _nearer_face(self, image: np.ndarray, current: FaceBox) -> FaceBox | None:
        """The largest face at least about as large as ``current``: the same face, or a nearer
        person. Only such faces matter, so the frame is shrunk until ``current`` would be
        about ``RESCAN_FACE`` px wide (at least), which makes this search several times cheaper
        than a full one."""
        wanted = RESCAN_FACE / max(current.w, 1)
        scale = self._frame_scale(image, min(self.scale, next((s for s in RESCAN_SCALES if s >= wanted), 1.0)))
        return largest(self.detector.detect_all(image, scale, max(self.min_face, int(0.8 * current.w))))

    def _search_near(self, image: np.ndarray, last: FaceBox) -> FaceBox | None:
        """The face in a square around ``last``, in frame pixels.

        The square keeps the face's own pixels where it can: a learned detector
        loses many faces that are shrunk below about 100 px, so only a near face
        is shrunk, to fit ``ROI_MAX``. The square is padded to a multiple of 32 so
        that the detector sees only a handful of input sizes.
        """
        h, w = image.shape[:2]
        side = ROI_FACES * max(last.w, last.h)
        cx, cy = last.x + last.w / 2, last.y + last.h / 2
        x0, y0 = max(int(round(cx - side / 2)), 0), max(int(round(cy - side / 2)), 0)
        x1, y1 = min(int(round(cx + side / 2)), w), min(int(round(cy + side / 2)), h)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        region = image[y0:y1, x0:x1]
        k = min(1.0, ROI_MAX / max(region.shape[:2]))
        if k < 1.0:
            region = cv2.resize(region, (max(int(region.shape[1] * k), 1), max(int(region.shape[0] * k), 1)),
                                interpolation=cv2.INTER_AREA)
        square = min(-(-max(region.shape[:2]) // 32) * 32, ROI_MAX)
        region = cv2.copyMakeBorder(region, 0, square - region.shape[0], 0, square - region.shape[1],
                                    cv2.BORDER_CONSTANT, value=0)
        min_face = max(int(min(self.min_face, last.w / 2) * k), 8)
        found = largest(self.detector.detect_all(region, 1.0, min_face))
        if found is None:
            return None
        box = _from_roi(found, x0, y0, k)
        return box if box.w >= self.min_face else None


def _from_roi(box: FaceBox, x0: int, y0: int, k: float) -> FaceBox:
    """A box found in the resized search square, back in frame pixels."""
    points = None
    if box.landmarks is not None:
        points = tuple((x0 + px / k, y0 + py / k) for px, py in box.landmarks)
    return FaceBox(int(round(x0 + box.x / k)), int(round(y0 + box.y / k)), int(round(box.w / k)),
                   int(round(box.h / k)), points, box.score)


def tracker_from_config(d: DetectConfig) -> FaceTracker:
    """The detector and tracker ``[detect]`` describes."""
    detector = make_detector(d.method, score_threshold=d.score_threshold, scale_factor=d.scale_factor,
                             min_neighbors=d.min_neighbors)
    return FaceTracker(detector, scale=d.scale, min_face=d.min_face, rescan_every=d.rescan_every,
                       idle_every=d.idle_every, tracking=d.tracking)
