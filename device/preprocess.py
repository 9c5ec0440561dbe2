"""The one face preprocessing function shared by the device, training and eval.

Training, evaluation and the live loop all call :func:`preprocess_face`, so
the pixels the model was trained on and the pixels it sees on the hat can
never drift apart.
"""
from __future__ import annotations

import cv2
import numpy as np

from core.frames import FaceBox
from device.align import FER_TEMPLATE, aligned_face, haar_like_box

FACE_SIZE = 48
DEFAULT_MARGIN = 0.1
CROPS = ("aligned", "box")


def crop_with_margin(image: np.ndarray, box: FaceBox, margin: float) -> np.ndarray:
    """Crop ``box`` grown by ``margin`` of its size on every side, clipped to the image.

    Haar boxes are tighter than the FER2013 crops the model learned from;
    the margin brings back forehead and chin.
    """
    h, w = image.shape[:2]
    dx, dy = int(round(box.w * margin)), int(round(box.h * margin))
    x0, y0 = max(box.x - dx, 0), max(box.y - dy, 0)
    x1, y1 = min(box.x + box.w + dx, w), min(box.y + box.h + dy, h)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"face box {box} lies outside the {w}x{h} image")
    return image[y0:y1, x0:x1]


def to_grey(image: np.ndarray) -> np.ndarray:
    """BGR or grey uint8 -> grey uint8."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    raise ValueError(f"expected a grey or BGR image, got shape {image.shape}")


def preprocess_face(
    image: np.ndarray,
    box: FaceBox | None = None,
    *,
    size: int = FACE_SIZE,
    margin: float = DEFAULT_MARGIN,
    equalize: bool = True,
    crop: str = "box",
    template: tuple[tuple[float, float], ...] = FER_TEMPLATE,
) -> np.ndarray:
    """Face pixels -> ``size`` x ``size`` uint8 grey, histogram-equalised.

    ``box=None`` means ``image`` already is a face crop (the training data).
    ``crop="aligned"`` maps the box's landmarks onto ``template``; a box
    without landmarks (the Haar cascade's) falls back to the box crop.
    ``crop="box"`` is what models made before the aligned crop expect: the
    Haar box plus ``margin``, rebuilt from the landmarks when a learned
    detector found the face. Resizing happens
    before equalisation so a 48x48 training face and a live crop are
    equalised over the same number of pixels.
    """
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {image.dtype}")
    if crop not in CROPS:
        raise ValueError(f"unknown crop {crop!r}; known: {', '.join(CROPS)}")
    if box is None:
        face = image
    elif crop == "aligned" and box.landmarks is not None:
        face = aligned_face(image, box.landmarks, size, template)
    else:
        face = crop_with_margin(image, haar_like_box(box.landmarks) if box.landmarks else box, margin)
    grey = to_grey(face)
    if grey.shape != (size, size):
        interp = cv2.INTER_AREA if min(grey.shape) > size else cv2.INTER_LINEAR
        grey = cv2.resize(grey, (size, size), interpolation=interp)
    return cv2.equalizeHist(grey) if equalize else np.ascontiguousarray(grey)


def crop_metadata() -> dict[str, object]:
    """The ``preprocessing`` of a model trained on FER2013-framed crops, for its JSON: the
    device gives it the aligned crop, which frames live faces as those crops are framed."""
    return {"size": FACE_SIZE, "margin": DEFAULT_MARGIN, "equalize": True, "pixel_scale": PIXEL_SCALE,
            "crop": "aligned", "template": [list(point) for point in FER_TEMPLATE]}


def preprocess_batch(images: np.ndarray, **params) -> np.ndarray:
    """Preprocess a stack of face crops (N, H, W) -> (N, size, size) uint8."""
    return np.stack([preprocess_face(img, **params) for img in images])


PIXEL_SCALE = 1.0 / 255.0


def scale_pixels(faces: np.ndarray) -> np.ndarray:
    """uint8 preprocessed faces -> float32 in [0, 1], the float model's input range."""
    return faces.astype(np.float32) * np.float32(PIXEL_SCALE)
