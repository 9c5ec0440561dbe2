"""Tracking on real photos: the face is followed in a small region, the full frame is searched
again when it is lost, every ``rescan_every`` seconds, and only every ``idle_every`` with no face."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.frames import FaceBox
from device.config import DetectConfig
from device.detect import YuNetDetector
from device.tracker import SEARCH_MAX_SIDE, FaceTracker, tracker_from_config
from tests.photos import place

pytest.importorskip("skimage.data", reason="scikit-image (the dev extra) ships the test photos")


class CountingYuNet(YuNetDetector):
    """The real detector, counting full-frame searches and small-region searches."""

    def __init__(self) -> None:
        super().__init__()
        self.full = self.region = 0

    def detect_all(self, image: np.ndarray, scale: float, min_face: int) -> list[FaceBox]:
        if image.shape[:2] == (480, 640):
            self.full += 1
        else:
            self.region += 1
        return super().detect_all(image, scale, min_face)


def centre(box: FaceBox) -> tuple[float, float]:
    return box.x + box.w / 2, box.y + box.h / 2


def test_a_moving_face_is_followed_in_a_small_region(astronaut, coffee):
    detector = CountingYuNet()
    tracker = FaceTracker(detector, min_face=30, rescan_every=1.0)
    for i in range(15):  # one second at 15 frames/s, the face drifting right 4 px a frame
        frame = place(astronaut, coffee, 0.6, (200 + 4 * i, 150))
        box = tracker.find(frame, i / 15)
        full = detector.__class__.__mro__[1].detect_all(detector, frame, 1.0, 30)[0]
        assert box is not None
        assert np.hypot(*np.subtract(centre(box), centre(full))) < 4, (i, box, full)
        assert abs(box.w - full.w) <= 0.12 * full.w
        assert np.abs(np.subtract(box.landmarks, full.landmarks)).max() < 4
    assert detector.full == 1 and detector.region == 14


def test_the_full_frame_is_searched_again_for_a_nearer_face(astronaut, coffee):
    detector = CountingYuNet()
    tracker = FaceTracker(detector, min_face=20, rescan_every=1.0)
    far = place(astronaut, coffee, 0.4, (0, 0))
    both = place(astronaut, far, 0.8, (230, 60))
    assert tracker.find(far, 0.0).x < 200
    assert tracker.find(both, 0.5).x < 200  # still following the first face
    assert tracker.find(both, 1.0).x > 230  # the full search at 1 s finds the nearer one
    assert detector.full == 2


def test_no_face_means_a_full_search_only_every_idle_every(coffee):
    detector = CountingYuNet()
    tracker = FaceTracker(detector, idle_every=0.2)
    for i in range(30):
        assert tracker.find(coffee, i / 15) is None
    assert detector.full == 10 and detector.region == 0  # 2 s of frames, one search each 0.2 s


def test_a_lost_face_is_searched_for_at_once_and_a_clock_going_back_resets(astronaut, coffee):
    detector = CountingYuNet()
    tracker = FaceTracker(detector, min_face=30)
    frame = place(astronaut, coffee, 0.6, (200, 150))
    assert tracker.find(frame, 0.0) is not None
    assert tracker.find(coffee, 0.1) is None  # lost in the region, then the full frame
    assert (detector.full, detector.region) == (2, 1)
    assert tracker.find(frame, 0.15) is None  # idle: next full search only at 0.3 s
    assert tracker.find(frame, 0.0) is not None  # a new clock (video looped): searched at once
    assert detector.full == 3


def test_a_face_at_the_frame_edge_is_followed(astronaut, coffee):
    tracker = FaceTracker(YuNetDetector(), min_face=30)
    frame = place(astronaut, coffee, 0.8, (430, 0))  # her face near the right edge
    first = tracker.find(frame, 0.0)
    assert first is not None
    again = tracker.find(frame, 0.1)
    assert again is not None and abs(again.x - first.x) <= 3


def test_without_tracking_every_frame_is_searched_whole(astronaut, coffee):
    detector = CountingYuNet()
    tracker = FaceTracker(detector, min_face=30, tracking=False)
    frame = place(astronaut, coffee, 0.6, (200, 150))
    for i in range(5):
        assert tracker.find(frame, i / 15) is not None
    assert detector.full == 5 and detector.region == 0


def test_config_builds_the_named_detector_at_its_own_scale():
    assert tracker_from_config(DetectConfig()).scale == 1.0
    haar = tracker_from_config(DetectConfig(method="haar"))
    assert haar.detector.name == "haar" and haar.scale == 0.5
    assert tracker_from_config(DetectConfig(method="yunet", scale=0.75)).scale == 0.75


def test_settle_gives_the_box_of_the_search_near_the_face(astronaut, coffee):
    detector = CountingYuNet()
    tracker = FaceTracker(detector, min_face=30)
    frame = place(astronaut, coffee, 0.6, (200, 150))
    box = tracker.settle(frame)
    assert (detector.full, detector.region) == (1, 1)
    again = FaceTracker(YuNetDetector(), min_face=30)
    again.find(frame, 0.0)
    assert again.find(frame, 0.5) == box  # what the device uses from its second frame on
    assert tracker.settle(coffee) is None and tracker.box is None


def test_a_huge_frame_is_searched_shrunk_and_its_face_found_in_its_own_pixels(astronaut, coffee):
    """A 4096 px frame (a misconfigured camera, a big video) is searched at most
    SEARCH_MAX_SIDE wide: the nets the detector made say what it was given."""
    frame = cv2.resize(place(astronaut, coffee, 0.6, (200, 150)), (4096, 3072), interpolation=cv2.INTER_CUBIC)
    small = cv2.resize(frame, (640, 480), interpolation=cv2.INTER_AREA)
    detector = YuNetDetector()
    tracker = FaceTracker(detector, min_face=48)
    box = tracker.find(frame, 0.0)
    assert box is not None and max(max(size) for size in detector._nets) <= SEARCH_MAX_SIDE
    expected = FaceTracker(YuNetDetector(), min_face=8).scan(small)
    assert abs(box.x - 6.4 * expected.x) < 0.05 * box.w and abs(box.w - 6.4 * expected.w) < 0.1 * box.w
    tracker.find(frame, 1.5)  # the search for a nearer face, too
    assert max(max(size) for size in detector._nets) <= SEARCH_MAX_SIDE
