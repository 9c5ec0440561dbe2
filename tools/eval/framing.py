"""How the device's crop frames a real head, against how FER2013 frames its faces.

    facecue-model framing [--crops ../shared/data/fer2013/valid.npz] [--n 1200]
                                 [--photos ../shared/data/caltech_faces]

The model only learned FER2013's framing. The device maps a live face's
landmarks onto FER2013's median landmarks (``device.align.FER_TEMPLATE``), so
the points it aligns on match by construction; what can still differ is
everything else about the face in the 48x48 square. Both kinds of crop are
measured the same way here: YuNet's five landmarks found in the 48x48 crop
itself (enlarged 4x, as ``tools.data.align_faces`` finds them), then the eye
line's height, the mouth's, the eye distance, the eyes-to-mouth distance and
their ratio (the face's proportions), median and quartiles. Photos need no
labels: this is about where a face sits, not what it shows.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from device.argparser import Parser, UsageError, bounded
from device.detect import YuNetDetector, largest
from device.preprocess import FACE_SIZE, preprocess_face
from tools.data.align_faces import SCORE, crop_landmarks
from tools.data.dataset import DatasetError, load_faces, shared_split

CALTECH = Path(__file__).resolve().parents[3] / "shared" / "data" / "caltech_faces"
MEASURES = ("eye line y", "mouth y", "eye distance", "eyes to mouth", "ratio")
MIN_PHOTO_FACE = 20  # px: YuNet's smallest face searched in a photo


def geometry(points: np.ndarray) -> np.ndarray:
    """(N, 5, 2) landmarks in 48x48 pixels -> (N, 5) measures, in ``MEASURES`` order."""
    eyes, mouth = points[:, :2].mean(axis=1), points[:, 3:5].mean(axis=1)
    eye_distance = np.linalg.norm(points[:, 1] - points[:, 0], axis=1)
    eyes_to_mouth = np.linalg.norm(mouth - eyes, axis=1)
    return np.stack([eyes[:, 1], mouth[:, 1], eye_distance, eyes_to_mouth, eyes_to_mouth / eye_distance], axis=1)


def crop_points(crops: np.ndarray, detector: YuNetDetector) -> np.ndarray:
    """Landmarks of each 48x48 crop where YuNet finds them, (found, 5, 2)."""
    found = [p for crop in crops if (p := crop_landmarks(crop, detector)) is not None]
    return np.array(found, np.float64).reshape(-1, 5, 2)


def device_crops(photos: list[Path], detector: YuNetDetector) -> np.ndarray:
    """The device's aligned 48x48 crop of the largest face in each photo (where one is found)."""
    crops = []
    for path in photos:
        image = cv2.imread(str(path))
        if image is None:
            raise DatasetError(f"{path}: not an image OpenCV can read")
        face = largest(detector.detect_all(image, 1.0, MIN_PHOTO_FACE))
        if face is not None:
            crops.append(preprocess_face(image, face, size=FACE_SIZE, crop="aligned", equalize=False))
    return np.array(crops, np.uint8).reshape(-1, FACE_SIZE, FACE_SIZE)


def table(rows: dict[str, np.ndarray]) -> str:
    """Median [quartiles] of each measure, one row per kind of crop."""
    lines = [f"{'':26s}" + "".join(f"{m:>22s}" for m in MEASURES)]
    for name, measures in rows.items():
        q1, med, q3 = np.percentile(measures, [25, 50, 75], axis=0)
        lines.append(f"{name:26s}" + "".join(f"{m:9.2f} [{a:5.2f},{b:5.2f}]" for m, a, b in zip(med, q1, q3,
                                                                                               strict=True)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="facecue-model framing", description=__doc__.splitlines()[0])
    p.add_argument("--crops", type=Path, default=shared_split("valid"), help="FER2013-format npz of face crops")
    p.add_argument("--n", type=bounded(int, at_least=1), default=1200, help="random crops to measure")
    p.add_argument("--photos", type=Path, default=CALTECH, help="folder of photos of people (*.jpg, *.png)")
    p.add_argument("--seed", type=int, default=0, help="which random crops")
    args = p.parse_args(argv)
    if args.crops is None:
        raise UsageError("no FER2013 crops: pass --crops FILE.npz")
    photos = sorted([*args.photos.glob("*.jpg"), *args.photos.glob("*.png")]) if args.photos.is_dir() else []
    if not photos:
        raise DatasetError(f"{args.photos}: no .jpg or .png photos")
    faces = load_faces(args.crops)
    pick = np.random.default_rng(args.seed).choice(len(faces), size=min(args.n, len(faces)), replace=False)
    detector = YuNetDetector(SCORE)
    fer = crop_points(faces.images[pick], detector)
    real = crop_points(device_crops(photos, detector), detector)
    if not len(fer) or not len(real):
        raise DatasetError("no landmarks found in the FER2013 crops or in the device's crops")
    print(f"landmarks in the 48x48 crop, px: {len(fer)} of {len(pick)} FER2013 crops, "
          f"{len(real)} device crops of {len(photos)} photos in {args.photos}")
    print(table({"FER2013 crops": geometry(fer), "device crop of real heads": geometry(real)}))
    ratio = np.median(geometry(real)[:, 4]) / np.median(geometry(fer)[:, 4])
    print(f"proportions (eyes to mouth / eye distance), device crop against FER2013: {ratio:.3f}")
    return 0
