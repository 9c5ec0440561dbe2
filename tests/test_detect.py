"""The face detectors on real photos: scikit-image's astronaut (a real face) placed in real
scenes, and those scenes without her. Needs no ../shared data."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from device.detect import DetectorError, HaarDetector, YuNetDetector, largest, make_detector
from tests.photos import place

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (the dev extra) ships the test photos")


def test_yunet_finds_her_face_with_landmarks_in_place(astronaut, coffee):
    frame = place(astronaut, coffee, 0.6, (300, 150))
    boxes = YuNetDetector().detect_all(frame, 1.0, 30)
    assert len(boxes) == 1
    box = boxes[0]
    # Her face: about x 178-268, y 63-176 in the photo, so at 0.6 from (300, 150):
    assert abs(box.x + box.w / 2 - (300 + 0.6 * 223)) < 10 and abs(box.y + box.h / 2 - (150 + 0.6 * 120)) < 12
    assert 40 <= box.w <= 70 and box.score >= 0.8
    right_eye, left_eye, nose, right_mouth, left_mouth = box.landmarks
    assert right_eye[0] < nose[0] < left_eye[0]  # the person's right eye is on the image's left
    assert right_mouth[0] < left_mouth[0]
    assert max(right_eye[1], left_eye[1]) < nose[1] < min(right_mouth[1], left_mouth[1])
    for x, y in box.landmarks:
        assert box.x <= x <= box.x + box.w and box.y <= y <= box.y + box.h


@pytest.mark.parametrize("scale", [0.5, 1.0])
def test_yunet_boxes_come_back_in_full_frame_pixels(astronaut, coffee, scale):
    frame = place(astronaut, coffee, 1.0, (100, 0))
    full = YuNetDetector().detect_all(frame, 1.0, 30)[0]
    box = YuNetDetector().detect_all(frame, scale, 30)[0]
    assert abs(box.x - full.x) <= 4 and abs(box.w - full.w) <= 6
    assert np.abs(np.subtract(box.landmarks, full.landmarks)).max() < 5


def test_no_face_in_real_scenes_without_people(coffee):
    detector = YuNetDetector()
    scenes = [coffee, cv2.resize(cv2.cvtColor(skimage_data.rocket(), cv2.COLOR_RGB2BGR), (640, 480)),
              cv2.cvtColor(cv2.resize(skimage_data.brick(), (640, 480)), cv2.COLOR_GRAY2BGR)]
    for scene in scenes:
        assert detector.detect_all(scene, 1.0, 30) == []


def test_grey_frames_and_min_face(astronaut, coffee):
    grey = cv2.cvtColor(place(astronaut, coffee, 0.6, (300, 150)), cv2.COLOR_BGR2GRAY)
    assert len(YuNetDetector().detect_all(grey, 1.0, 30)) == 1
    assert YuNetDetector().detect_all(grey, 1.0, 80) == []  # her face is ~55 px wide here


def test_largest_face_wins(astronaut, coffee):
    frame = place(astronaut, coffee, 0.4, (0, 0))
    frame = place(astronaut, frame, 0.8, (230, 60))
    boxes = YuNetDetector().detect_all(frame, 1.0, 20)
    assert len(boxes) == 2
    assert largest(boxes).x > 230
    assert largest([]) is None


def test_haar_stays_available_and_gives_no_landmarks(astronaut, coffee):
    frame = place(astronaut, coffee, 1.0, (60, 0))
    boxes = make_detector("haar").detect_all(frame, 0.5, 60)
    assert boxes and all(b.landmarks is None for b in boxes)
    box = largest(boxes)  # on her face (about x 178-268, y 63-176 in the photo), shifted by (60, 0)
    assert abs(box.x + box.w / 2 - (60 + 223)) < 12 and abs(box.y + box.h / 2 - 120) < 15
    assert 80 <= box.w <= 130
    assert isinstance(make_detector("yunet"), YuNetDetector)


def test_bad_detector_choices_are_one_line_errors(tmp_path: Path):
    with pytest.raises(DetectorError, match="unknown face detector 'hog'"):
        make_detector("hog")
    with pytest.raises(DetectorError, match="not found"):
        YuNetDetector(model=tmp_path / "none.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx")
    with pytest.raises(DetectorError, match="cannot be loaded"):
        YuNetDetector(model=broken)
    with pytest.raises(DetectorError, match="cannot be loaded"):
        HaarDetector(cascade=broken)
