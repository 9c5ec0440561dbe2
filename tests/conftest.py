"""Shared fixtures: the FER2013 data when present, the shipped model, faces that are found."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models import DEFAULT_MODEL
from tools.data.dataset import FaceSet, load_faces, shared_split

ROOT = Path(__file__).resolve().parents[1]

# The cloud tests' fixtures (moto's S3 server, buckets, fleets, fixture models) live in
# s3_server.py; registered here once instead of being imported into each test module.
pytest_plugins = ["s3_server"]


@pytest.fixture(scope="session")
def valid_faces() -> FaceSet:
    path = shared_split("valid")
    if path is None:
        pytest.skip("../shared/data/fer2013/valid.npz is absent")
    return load_faces(path)


@pytest.fixture(scope="session")
def model_path() -> Path:
    if not DEFAULT_MODEL.is_file():
        pytest.skip(f"shipped model {DEFAULT_MODEL.name} is absent")
    return DEFAULT_MODEL


@pytest.fixture(scope="session")
def clear_faces(valid_faces: FaceSet, model_path: Path) -> dict[str, np.ndarray]:
    """One validation face per label that the default detector finds in a composed
    640x480 frame and the shipped model calls right with confidence: the
    ground truth for end-to-end tests of the whole device path."""
    from device.classify import Classifier
    from device.config import DetectConfig
    from device.tracker import tracker_from_config
    from tools.data.face_video import compose_frame

    detector, classifier = tracker_from_config(DetectConfig()), Classifier(model_path)
    chosen: dict[str, np.ndarray] = {}
    for image, label in zip(valid_faces.images, valid_faces.labels, strict=True):
        name = valid_faces.classes[label]
        if name in chosen:
            continue
        frame = compose_frame(image)
        box = detector.scan(frame)
        if box is None:
            continue
        p = classifier.classify(classifier.preprocess(frame, box))
        if p.best[0] == name and p.best[1] >= 0.7:
            chosen[name] = image
        if len(chosen) == len(valid_faces.classes):
            break
    return chosen


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's photo of one person (a real face; no ../shared needed)."""
    pytest.importorskip("skimage", reason="scikit-image (the dev extra) ships the test photos")
    from tests.photos import astronaut

    return astronaut()


@pytest.fixture(scope="session")
def coffee() -> np.ndarray:
    """A real 640x480 scene with no face."""
    pytest.importorskip("skimage", reason="scikit-image (the dev extra) ships the test photos")
    from tests.photos import coffee

    return coffee()
