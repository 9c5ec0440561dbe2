"""The aligned face crop: five landmarks mapped onto the training faces' geometry.

A detector's box says roughly where a face is, but each detector draws it
differently (YuNet's boxes are taller and narrower than Haar's) and neither
levels a tilted head. The model only ever learned FER2013's framing, so the
device maps the live face's landmarks onto where those points sit in FER2013
crops, with one similarity transform (rotation, uniform scale, shift) straight
to the model's input size. How the template was measured is in the model card.
"""
from __future__ import annotations

import cv2
import numpy as np

from core.frames import FaceBox

# Where the five landmarks (core.frames.LANDMARKS order) sit in a FER2013 crop, as
# fractions of its side: the median of YuNet's points on 2,443 upscaled training faces,
# made left-right symmetric so that a face and its mirror image align alike.
FER_TEMPLATE: tuple[tuple[float, float], ...] = (
    (0.3140, 0.3823),  # right eye
    (0.6781, 0.3823),  # left eye
    (0.4960, 0.5906),  # nose tip
    (0.3479, 0.7371),  # right mouth corner
    (0.6442, 0.7371),  # left mouth corner
)


# Where OpenCV's Haar cascade puts its square box, in units of the distance from the eyes' midpoint
# to the mouth's: its centre that far above the midpoint of those two, its side that many wide.
# Medians over the 83 Caltech photos where both detectors found the face (see the model card).
HAAR_CENTRE_UP = 0.188
HAAR_SIDE = 2.653


def haar_like_box(landmarks: tuple[tuple[float, float], ...]) -> FaceBox:
    """The box the Haar cascade would have drawn around a face with these landmarks.

    Models made before the aligned crop learned the Haar box plus a margin;
    a YuNet box is taller and narrower, so those models get this box instead.
    """
    points = np.asarray(landmarks, np.float64)
    eyes, mouth = points[:2].mean(axis=0), points[3:5].mean(axis=0)
    d = float(np.linalg.norm(mouth - eyes))
    cx, cy = (eyes + mouth) / 2
    cy -= HAAR_CENTRE_UP * d
    side = HAAR_SIDE * d
    return FaceBox(int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(side)), int(round(side)))


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The least-squares similarity (2x3 matrix) taking points ``src`` onto ``dst``.

    Closed form (Umeyama without reflection), so that the same landmarks give
    the same crop on every machine; OpenCV's estimator picks points at random.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    var = (s ** 2).sum()
    if var < 1e-9:
        raise ValueError("face landmarks coincide; cannot align")
    # For 2-D points the optimal rotation+scale is a complex ratio: sum(conj(s) * d) / |s|^2.
    sc, dc = s[:, 0] + 1j * s[:, 1], d[:, 0] + 1j * d[:, 1]
    z = (np.conj(sc) * dc).sum() / var
    a, b = z.real, z.imag
    rot = np.array([[a, -b], [b, a]])
    shift = mu_d - rot @ mu_s
    return np.hstack([rot, shift[:, None]])


def aligned_face(image: np.ndarray, landmarks: tuple[tuple[float, float], ...], size: int,
                 template: tuple[tuple[float, float], ...] = FER_TEMPLATE) -> np.ndarray:
    """``size`` x ``size`` crop (grey or BGR, as ``image``) of the face whose ``landmarks`` are given,
    in template geometry.

    A far face is upsampled bilinearly; a near one is first shrunk with area
    averaging to about twice the output size, because a straight warp from a
    250 px face to 48 px would alias. Pixels beyond the frame edge repeat it.
    """
    dst = np.asarray(template, np.float64) * size
    matrix = similarity(np.asarray(landmarks, np.float64), dst)
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))  # output px per input px
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError("face landmarks give no usable alignment")
    if scale < 0.5:
        # Shrink only the part of the frame the crop comes from.
        inverse = cv2.invertAffineTransform(matrix)
        corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64) @ inverse.T
        h, w = image.shape[:2]
        x0, y0 = np.floor(corners.min(axis=0)).astype(int)
        x1, y1 = np.ceil(corners.max(axis=0)).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            raise ValueError("face lies outside the image")
        factor = 2.0 * scale  # shrink so the remaining warp scales by 1/2
        region = image[y0:y1, x0:x1]
        small = cv2.resize(region, (max(int(round(region.shape[1] * factor)), 1),
                                    max(int(round(region.shape[0] * factor)), 1)), interpolation=cv2.INTER_AREA)
        fx, fy = small.shape[1] / region.shape[1], small.shape[0] / region.shape[0]
        # Express the transform on the shrunk region's pixels: p_region = p_frame - (x0, y0), then scaled.
        to_small = np.array([[fx, 0, -fx * x0], [0, fy, -fy * y0], [0, 0, 1]], np.float64)
        matrix = (np.vstack([matrix, [0, 0, 1]]) @ np.linalg.inv(to_small))[:2]
        image = small
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
