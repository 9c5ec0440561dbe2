"""The device path and the training path give identical arrays for the same face.

Device: a camera frame plus the Haar ``FaceBox`` -> ``preprocess_face`` (or
``Classifier.preprocess`` with the shipped model's parameters). Training:
the face crop in an npz -> ``FaceSet.preprocessed`` -> ``to_input``. A face
pasted into a frame so that the box grown by the margin is exactly the crop
must come out bit-identical both ways.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.frames import FaceBox, Frame
from device.classify import Classifier
from device.preprocess import DEFAULT_MARGIN, preprocess_face
from tools.data.augment import to_input
from tools.data.dataset import FaceSet


def crops(n: int, side: int, seed: int = 0) -> np.ndarray:
    """Face-like crops: a smooth blob pattern with uneven contrast, as equalisation sees in FER."""
    rng = np.random.default_rng(seed)
    small = rng.normal(110, 40, (n, 6, 6)).astype(np.float32)
    big = np.stack([cv2.resize(s, (side, side), interpolation=cv2.INTER_CUBIC) for s in small])
    return big.clip(0, 255).astype(np.uint8)


def frame_with(face: np.ndarray, at: tuple[int, int], bgr: bool) -> tuple[Frame, FaceBox]:
    """A 320x240 frame holding ``face`` at ``at``, and the Haar box whose margin-grown crop is ``face``."""
    x0, y0 = at
    side = face.shape[0]
    image = np.full((240, 320), 37, np.uint8)
    image[y0:y0 + side, x0:x0 + side] = face
    inner = round(side / (1 + 2 * DEFAULT_MARGIN))
    pad = round(inner * DEFAULT_MARGIN)
    assert inner + 2 * pad == side, "pick a side the margin maps back exactly"
    if bgr:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return Frame(image, 0.0, 0), FaceBox(x0 + pad, y0 + pad, inner, inner)


@pytest.mark.parametrize("side", [48, 96, 120])
@pytest.mark.parametrize("bgr", [False, True])
def test_frame_and_box_give_the_training_array(side, bgr):
    faces = crops(6, side, seed=side)
    trained = FaceSet(faces, np.zeros(len(faces), np.int64), ("x",)).preprocessed()
    assert trained.shape == (6, 48, 48) and trained.dtype == np.uint8
    for face, expected in zip(faces, trained, strict=True):
        frame, box = frame_with(face, (50, 30), bgr)
        np.testing.assert_array_equal(preprocess_face(frame.image, box), expected)


def test_real_faces_agree(valid_faces):
    faces = valid_faces.images[:32]
    trained = FaceSet(faces, valid_faces.labels[:32], valid_faces.classes).preprocessed()
    for face, expected in zip(faces, trained, strict=True):
        frame, box = frame_with(face, (200, 100), bgr=True)
        np.testing.assert_array_equal(preprocess_face(frame.image, box), expected)


def test_the_paths_differ_when_they_should():
    """Guards the test itself: a box without the margin's worth of face is not the training crop."""
    face = crops(1, 48)[0]
    frame, box = frame_with(face, (50, 30), bgr=False)
    shifted = FaceBox(box.x + 2, box.y, box.w, box.h)
    assert not np.array_equal(preprocess_face(frame.image, shifted), preprocess_face(face))


def test_shipped_model_sees_the_training_pixels(model_path):
    """``Classifier.preprocess`` (the model JSON's parameters) gives the training arrays, and
    the int8 input quantisation maps the training input ``to_input`` back to every grey
    level losslessly (pixel - 128), so nothing is lost between the two paths."""
    classifier = Classifier(model_path)
    faces = crops(4, 96, seed=7)
    trained = FaceSet(faces, np.zeros(4, np.int64), ("x",)).preprocessed()
    device = []
    for face in faces:
        frame, box = frame_with(face, (100, 60), bgr=True)
        device.append(classifier.preprocess(frame.image, box))
    np.testing.assert_array_equal(np.stack(device), trained)
    spec = classifier.info.meta["input"]
    levels = np.arange(256, dtype=np.uint8)[None]
    quantised = np.round(to_input(levels)[..., 0] / spec["scale"]) + spec["zero_point"]
    np.testing.assert_array_equal(quantised, levels.astype(np.int64) - 128)
