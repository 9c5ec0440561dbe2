"""The aligned crop: landmarks onto the FER2013 template, one similarity transform to 48x48."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from core.frames import FaceBox
from device.align import FER_TEMPLATE, aligned_face, similarity
from device.classify import Classifier, ModelError
from device.detect import YuNetDetector
from device.preprocess import preprocess_face
from tests.photos import place

pytest.importorskip("skimage.data", reason="scikit-image (the dev extra) ships the test photos")


def test_similarity_recovers_a_known_rotation_scale_and_shift():
    angle, scale, shift = np.radians(17), 0.37, np.array([5.0, -3.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = np.array([[10, 20], [50, 22], [30, 40], [15, 60], [45, 61]], np.float64)
    matrix = similarity(src, src @ rot.T + shift)
    np.testing.assert_allclose(matrix, np.hstack([rot, shift[:, None]]), atol=1e-9)
    with pytest.raises(ValueError, match="coincide"):
        similarity(np.ones((5, 2)), src)


def test_the_template_is_level_and_symmetric():
    t = np.array(FER_TEMPLATE)
    assert t[0, 1] == t[1, 1] and t[3, 1] == t[4, 1]
    assert t[0, 0] + t[1, 0] == pytest.approx(2 * t[2, 0], abs=1e-3) == pytest.approx(t[3, 0] + t[4, 0], abs=1e-3)


def face_in(frame: np.ndarray) -> FaceBox:
    return max(YuNetDetector().detect_all(frame, 1.0, 20), key=lambda b: b.area)


def near(astronaut: np.ndarray, scale: float) -> np.ndarray:
    """A 640x480 frame of her face ``scale`` times its size in the photo, centred."""
    big = cv2.resize(astronaut, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    x, y = int(223 * scale) - 320, max(int(120 * scale) - 240, 0)
    return np.ascontiguousarray(big[y:y + 480, x:x + 640])


def test_a_tilted_face_is_levelled(astronaut):
    # YuNet follows a head's roll on faces over ~120 px; on small faces its eyes stay nearly level
    # (see the model card), so this is measured on a 140 px face.
    frame = near(astronaut, 1.6)
    centre = (320, 120 * 1.6)
    tilted = cv2.warpAffine(frame, cv2.getRotationMatrix2D(centre, 20, 1.0), (640, 480), borderMode=cv2.BORDER_REFLECT)
    upright, rolled = face_in(frame), face_in(tilted)
    eyes = np.subtract(rolled.landmarks[1], rolled.landmarks[0])
    assert abs(np.degrees(np.arctan2(eyes[1], eyes[0]))) > 8  # the detector sees the roll...
    a = preprocess_face(frame, upright, crop="aligned")
    b = preprocess_face(tilted, rolled, crop="aligned")
    assert a.shape == b.shape == (48, 48)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9  # ...and the crops agree
    box_a, box_b = preprocess_face(frame, upright), preprocess_face(tilted, rolled)
    assert np.corrcoef(box_a.ravel(), box_b.ravel())[0, 1] < np.corrcoef(a.ravel(), b.ravel())[0, 1]


def test_eyes_land_on_the_template(astronaut, coffee):
    frame = place(astronaut, coffee, 1.0, (60, 0))
    box = face_in(frame)
    # Mark the eyes with bright dots and find them again in the crop.
    marked = frame.copy()
    for x, y in box.landmarks[:2]:
        cv2.circle(marked, (int(round(x)), int(round(y))), 3, (255, 255, 255), -1)
    crop = aligned_face(marked, box.landmarks, 48).astype(int) - aligned_face(frame, box.landmarks, 48).astype(int)
    diff = np.abs(crop).sum(axis=2)
    for (tx, ty), half in ((FER_TEMPLATE[0], slice(0, 24)), (FER_TEMPLATE[1], slice(24, 48))):
        ys, xs = np.nonzero(diff[:, half] > 40)
        assert abs(xs.mean() + half.start - tx * 48) < 1.5 and abs(ys.mean() - ty * 48) < 1.5


def test_near_and_far_faces_give_the_same_crop(astronaut, coffee):
    close, far = near(astronaut, 2.5), place(astronaut, coffee, 0.55, (100, 100))
    a = preprocess_face(close, face_in(close), crop="aligned")  # ~225 px face: shrunk before the warp
    b = preprocess_face(far, face_in(far), crop="aligned")  # ~50 px face: upsampled
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.85


def test_a_face_cut_by_the_frame_edge_still_gives_a_crop(astronaut, coffee):
    frame = place(astronaut, coffee, 1.0, (0, 0))[40:, 190:]  # half her face outside
    box = face_in(np.ascontiguousarray(frame))
    assert preprocess_face(np.ascontiguousarray(frame), box, crop="aligned").shape == (48, 48)


def test_a_box_without_landmarks_falls_back_to_the_box_crop(astronaut):
    box = FaceBox(178, 63, 90, 113)
    np.testing.assert_array_equal(preprocess_face(astronaut, box, crop="aligned"), preprocess_face(astronaut, box))
    with pytest.raises(ValueError, match="unknown crop"):
        preprocess_face(astronaut, box, crop="oval")


@pytest.mark.parametrize("change, message", [
    ({"crop": "oval"}, "crop must be one of"),
    ({"margin": -5.0}, "margin must be 0..1"),
    ({"template": [[0.3, 0.4]]}, "template must be 5"),
    ({"template": [[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.7], "x"]}, "malformed preprocessing"),
])
def test_a_model_with_unusable_crop_metadata_is_refused_at_load(model_path, tmp_path, change, message):
    meta = json.loads(model_path.with_suffix(".json").read_text())
    meta["preprocessing"].update(change)
    copy = tmp_path / model_path.name
    copy.write_bytes(model_path.read_bytes())
    copy.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=message):
        Classifier(copy)


def test_models_made_for_the_haar_crop_get_a_haar_like_box_from_yunet(astronaut, coffee):
    from device.align import haar_like_box
    from device.detect import HaarDetector, largest

    frame = place(astronaut, coffee, 1.0, (60, 0))
    haar = largest(HaarDetector().detect_all(frame, 1.0, 60))
    rebuilt = haar_like_box(face_in(frame).landmarks)
    assert abs(rebuilt.x + rebuilt.w / 2 - (haar.x + haar.w / 2)) < 0.1 * haar.w
    assert abs(rebuilt.y + rebuilt.h / 2 - (haar.y + haar.h / 2)) < 0.1 * haar.w
    assert 0.85 < rebuilt.w / haar.w < 1.15 and rebuilt.w == rebuilt.h


def test_a_degenerate_face_is_no_face_for_that_frame_not_a_crash(model_path, coffee):
    from core.frames import Frame
    from device.config import DecideConfig
    from device.decide import Decider
    from device.pipeline import Pipeline
    from device.tracker import FaceTracker

    class Degenerate(FaceTracker):
        """The real tracker, but this frame's landmarks all coincide (what no detector should give)."""

        def find(self, image, t):
            return FaceBox(300, 200, 60, 60, ((320.0, 220.0),) * 5, 0.9)

    pipeline = Pipeline(Degenerate(YuNetDetector()), Decider(DecideConfig()))
    result = pipeline.step(Frame(coffee, 0.0, 0), Classifier(model_path))
    assert result.box is None and result.prediction is None and result.announcements == []
