"""Finding the face frame after frame without searching the whole frame each time.

A full-frame search is the dearest step of the loop. Once a face is found
the tracker looks for it only in a small square around its last box, shrunk
to a fixed size, and searches the full frame again when the face is lost,
and at least every ``rescan_every`` seconds so that a second, closer person
is not missed (the largest face is the one spoken about). With no face in
view it searches the full frame every ``idle_every`` seconds rather than on
every frame. All times are the frames' own clock, so a video file gives the
same boxes on every run.
"""
from __future__ import annotations

import cv2
import numpy as np

from device.config import DetectConfig
from device.detect import FaceDetector, largest, make_detector
from device.frames import FaceBox

ROI_SIDE = 160  # px of the square the tracked face is searched in
ROI_FACES = 2.6  # the square spans this many face widths (YuNet boxes are ~1.3 widths tall)


class FaceTracker:
    def __init__(self, detector: FaceDetector, *, scale: float = 0.0, min_face: int = 60,
                 rescan_every: float = 1.0, idle_every: float = 0.2, tracking: bool = True) -> None:
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

    def scan(self, image: np.ndarray) -> FaceBox | None:
        """The largest face of the whole ``image``: one photo, no history."""
        return largest(self.detector.detect_all(image, self.scale, self.min_face))

    def find(self, image: np.ndarray, t: float) -> FaceBox | None:
        """The face to speak about in the frame taken at ``t`` seconds, or None."""
        if not self.tracking:
            return self.scan(image)
        if self._last_scan is not None and t < self._last_scan:
            self.reset()
        since = None if self._last_scan is None else t - self._last_scan + 1e-6  # 3 frames of 1/15 s make 0.2 s
        if self.box is not None and since is not None and since < self.rescan_every:
            box = self._search_near(image, self.box)
            if box is not None:
                self.box = box
                return box
        elif self.box is None and since is not None and since < self.idle_every:
            return None
        self.box = self.scan(image)
        self._last_scan = t
        return self.box

    def _search_near(self, image: np.ndarray, last: FaceBox) -> FaceBox | None:
        """The face in a ``ROI_SIDE`` square around ``last``, in frame pixels."""
        h, w = image.shape[:2]
        side = max(last.w * ROI_FACES, last.h * 2.0)
        cx, cy = last.x + last.w / 2, last.y + last.h / 2
        x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
        s = int(round(side))
        # Pad where the square leaves the frame, so the search input keeps one size.
        region = image[max(y0, 0):min(y0 + s, h), max(x0, 0):min(x0 + s, w)]
        if region.size == 0:
            return None
        region = cv2.copyMakeBorder(region, max(-y0, 0), max(y0 + s - h, 0), max(-x0, 0), max(x0 + s - w, 0),
                                    cv2.BORDER_REPLICATE)
        k = ROI_SIDE / s
        resized = cv2.resize(region, (ROI_SIDE, ROI_SIDE), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
        min_face = max(int(min(self.min_face, last.w / 2) * k), 8)
        found = largest(self.detector.detect_all(resized, 1.0, min_face))
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
