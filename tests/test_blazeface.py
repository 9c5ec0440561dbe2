"""BlazeFace (tools/bench/blazeface.py), a comparison detector: decoding helpers always, the model on real photos
when FACECUE_BLAZEFACE names the full-range .tflite (see the tool's docstring for how to get it)."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from tools.bench.blazeface import BlazeFaceDetector, make_anchors, weighted_nms

SHARED = Path(__file__).resolve().parents[2] / "shared"
CALTECH = SHARED / "data" / "caltech_faces" / "image_0001.jpg"
YUNET = SHARED / "models" / "yunet" / "face_detection_yunet_2026may.onnx"


@pytest.fixture(scope="module")
def detector() -> BlazeFaceDetector:
    path = os.environ.get("FACECUE_BLAZEFACE")
    if not path:
        pytest.skip("FACECUE_BLAZEFACE (path to face_detection_full_range.tflite) is not set")
    if not Path(path).is_file():
        pytest.skip(f"FACECUE_BLAZEFACE={path} is not a file")
    return BlazeFaceDetector(path)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    if not CALTECH.is_file():
        pytest.skip(f"{CALTECH} is absent (../shared not mounted)")
    return cv2.imread(str(CALTECH))


def place(photo: np.ndarray, size: tuple[int, int], at: tuple[int, int], background: int = 120) -> np.ndarray:
    """``photo`` pasted into a plain BGR frame of ``size`` (w, h) with its top-left corner at ``at``."""
    frame = np.full((size[1], size[0], 3), background, np.uint8)
    h, w = photo.shape[:2]
    frame[at[1]:at[1] + h, at[0]:at[0] + w] = photo
    return frame


def test_anchors_follow_the_model_layouts() -> None:
    full = make_anchors(192, 2304)  # one anchor per cell of a 48x48 grid, x varying fastest
    assert full.shape == (2304, 2)
    np.testing.assert_allclose(full[:2], [[0.5 / 48, 0.5 / 48], [1.5 / 48, 0.5 / 48]])
    np.testing.assert_allclose(full[48], [0.5 / 48, 1.5 / 48])
    short = make_anchors(128, 896)  # 16x16 x 2, then 8x8 x 6
    np.testing.assert_allclose(short[[0, 1, 2]], [[1 / 32, 1 / 32], [1 / 32, 1 / 32], [3 / 32, 1 / 32]])
    np.testing.assert_allclose(short[512:518], [[1 / 16, 1 / 16]] * 6)
    with pytest.raises(ValueError):
        make_anchors(192, 1000)


def test_weighted_nms_blends_overlaps_and_keeps_separate_faces() -> None:
    boxes = np.array([[0.0, 0.0, 1.0, 1.0, 0.5, 0.5],
                      [0.1, 0.0, 1.1, 1.0, 0.7, 0.5],
                      [5.0, 5.0, 6.0, 6.0, 5.5, 5.5]], np.float32)
    scores = np.array([0.6, 0.9, 0.8], np.float32)
    out = weighted_nms(boxes, scores)
    assert [round(s, 2) for _, s in out] == [0.9, 0.8]
    np.testing.assert_allclose(out[0][0], (boxes[0] * 0.6 + boxes[1] * 0.9) / 1.5, rtol=1e-6)
    np.testing.assert_allclose(out[1][0], boxes[2])


def test_finds_the_face_where_yunet_does(detector: BlazeFaceDetector, photo: np.ndarray) -> None:
    if not YUNET.is_file():
        pytest.skip(f"{YUNET} is absent")
    frame = place(photo, (640, 480), (150, 120))
    face = detector.detect(frame)
    assert face is not None and face.score > 0.5
    yunet = cv2.FaceDetectorYN.create(str(YUNET), "", (640, 480), 0.7, 0.3, 50)
    _, rows = yunet.detect(frame)
    ref = max(rows, key=lambda r: r[2] * r[3])
    tol = 0.1 * ref[2]
    # BlazeFace's box is squarer (brow to chin) than YuNet's, so compare centres and widths, not corners.
    assert abs(face.x + face.w / 2 - (ref[0] + ref[2] / 2)) < tol
    assert abs(face.y + face.h / 2 - (ref[1] + ref[3] / 2)) < 1.5 * tol
    assert 0.8 < face.w / ref[2] < 1.4
    marks = np.array(face.landmarks)
    assert marks.shape == (5, 2)
    np.testing.assert_allclose(marks[:3], ref[4:10].reshape(3, 2), atol=tol)  # eyes and nose
    assert marks[0, 0] < marks[1, 0]  # the person's right eye is on the image's left
    np.testing.assert_array_equal(marks[3], marks[4])  # one mouth centre in both corner slots


def test_no_face_in_blank_frames(detector: BlazeFaceDetector) -> None:
    assert detector.detect_all(np.full((480, 640, 3), 120, np.uint8)) == []
    assert detector.detect(np.zeros((480, 640), np.uint8)) is None


@pytest.mark.parametrize("size, at", [((640, 480), (20, 150)), ((480, 720), (10, 300))])
def test_boxes_are_in_full_frame_pixels_after_letterboxing(detector: BlazeFaceDetector, photo: np.ndarray,
                                                           size: tuple[int, int], at: tuple[int, int]) -> None:
    """The detector pads a non-square frame to a square; padding it ourselves first (black, same side)
    must give the same faces shifted by exactly that padding."""
    frame = place(photo, size, at)
    w, h = size
    side = max(w, h)
    left, top = (side - w) // 2, (side - h) // 2
    square = cv2.copyMakeBorder(frame, top, side - h - top, left, side - w - left, cv2.BORDER_CONSTANT, value=0)
    (face,), (ref,) = detector.detect_all(frame), detector.detect_all(square)
    assert abs(face.x - (ref.x - left)) <= 1 and abs(face.y - (ref.y - top)) <= 1
    assert abs(face.w - ref.w) <= 1 and abs(face.h - ref.h) <= 1
    np.testing.assert_allclose(np.array(face.landmarks), np.array(ref.landmarks) - (left, top), atol=1e-3)
    assert at[0] < face.x + face.w / 2 < at[0] + photo.shape[1]
    assert at[1] < face.y + face.h / 2 < at[1] + photo.shape[0]
    assert 0 <= face.x and face.x + face.w <= w and 0 <= face.y and face.y + face.h <= h


def test_grey_frames_and_min_face(detector: BlazeFaceDetector, photo: np.ndarray) -> None:
    grey = cv2.cvtColor(place(photo, (640, 480), (100, 100)), cv2.COLOR_BGR2GRAY)
    face = detector.detect(grey)
    assert face is not None
    strict = BlazeFaceDetector(os.environ["FACECUE_BLAZEFACE"], min_face=face.w + 10)
    assert strict.detect(grey) is None
