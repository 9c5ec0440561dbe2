"""Loading face data sets in the shared FER2013 ``.npz`` format.

One loader for training, evaluation and benchmarks, so a malformed file is
rejected with the same one-line message everywhere.
"""
from __future__ import annotations

import csv
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from device.preprocess import preprocess_batch

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "fer2013"
DATA_ENV = "FACECUE_DATA"  # a folder holding train.npz and valid.npz, for a clone outside ../shared


class DatasetError(ValueError):
    """A data file that cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class FaceSet:
    images: np.ndarray  # (N, H, W) uint8 raw grey faces
    labels: np.ndarray  # (N,) int class indices
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def preprocessed(self, **params) -> np.ndarray:
        """The faces through the device's own preprocessing."""
        return preprocess_batch(self.images, **params)


MAX_CROP_SIDE = 256  # a bigger or clearly non-square image is a photo to search, not a face crop


@dataclass(frozen=True)
class PhotoSet:
    images: list[np.ndarray]  # each HxW grey or HxWx3 BGR uint8, any size
    labels: np.ndarray
    classes: tuple[str, ...]
    boxes: np.ndarray | None = None  # (N, 4) x, y, w, h of each face where the file records it (scene sets)
    # The expression most of each photo's raters chose, "" where they could not choose
    # its label (a folder whose labels.csv has rater columns, see load_photo_folder).
    raters: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.labels)


def check_npz_file(path: Path, what: str) -> None:
    """Refuse, in one line, a path that is not a file or not an npz (zip) archive, before
    NumPy gives its own message; ``what`` names the kind of file (data, votes)."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such {what} file")
    if not zipfile.is_zipfile(path):
        raise DatasetError(f"{path}: not a readable npz file (not a zip archive)")


def _read_npz(path: Path, allow_pickle: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    check_npz_file(path, "data")
    try:
        with np.load(path, allow_pickle=allow_pickle) as data:
            missing = {"images", "labels", "classes"} - set(data.files)
            if missing:
                raise DatasetError(f"{path}: missing arrays {sorted(missing)}")
            return data["images"], data["labels"], data["classes"]
    except DatasetError:
        raise
    except ValueError as exc:
        if not allow_pickle and "allow_pickle" in str(exc):
            raise DatasetError(f"{path}: images are an object array (photos of different sizes); "
                               "they are only read with --detect") from None
        raise DatasetError(f"{path}: not a readable npz file ({exc})") from None
    except Exception as exc:  # zip/pickle/format errors all mean the same to a user
        raise DatasetError(f"{path}: not a readable npz file ({exc})") from None


def _check_labels(path: Path, labels: np.ndarray, n: int, classes: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    if labels.shape != (n,):
        raise DatasetError(f"{path}: {len(labels)} labels for {n} images")
    names = tuple(str(c) for c in classes)
    if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
        raise DatasetError(f"{path}: labels outside 0..{len(names) - 1}")
    return labels.astype(np.int64), names


def load_faces(path: str | Path) -> FaceSet:
    """Read face crops (``images`` uint8 (N, H, W), ``labels``, ``classes``) from an npz.

    Photos are refused here rather than squeezed into 48x48: a squashed photo
    gives a confident, meaningless answer.
    """
    path = Path(path)
    images, labels, classes = _read_npz(path, allow_pickle=False)
    if images.dtype == np.uint8 and images.ndim in (3, 4) and len(images):
        h, w = images.shape[1:3]
        if max(h, w) > MAX_CROP_SIDE or max(h, w) > 1.25 * min(h, w):
            raise DatasetError(f"{path}: images are {w}x{h} photos, not face crops; "
                               "add --detect to find the faces in them")
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DatasetError(f"{path}: images must be uint8 (N, H, W), got {images.dtype} {images.shape}")
    labels, names = _check_labels(path, labels, len(images), classes)
    return FaceSet(images, labels, names)


def load_photos(path: str | Path) -> PhotoSet:
    """Read photos (grey or BGR uint8, any size; an object array where sizes differ) and
    their expression labels from an npz, for scoring through the device's detector.

    An object array is a pickle: only load files you made or trust.
    """
    path = Path(path)
    images, labels, classes = _read_npz(path, allow_pickle=True)
    photos = list(images)
    for i, image in enumerate(photos):
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or not (
                image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3))) or min(image.shape[:2]) < 8:
            what = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise DatasetError(f"{path}: image {i} must be a grey or BGR uint8 photo, got {what}")
    labels, names = _check_labels(path, labels, len(photos), classes)
    return PhotoSet(photos, labels, names, _face_boxes(path, photos))


LABELS_FILE = "labels.csv"
RATER_PREFIX = "obs_"  # labels.csv columns with the share of raters choosing each expression
MAX_LABELS_BYTES = 16 << 20  # a labels file bigger than this is not a list of photos


def load_photo_folder(folder: str | Path) -> tuple[PhotoSet, list[str]]:
    """Read a folder of labelled photos: ``labels.csv`` with a header naming at least
    ``file`` (a path inside the folder) and ``label`` (an expression name), one row per
    photo. Returns the photos and each row's ``performer`` (the person in the photo;
    empty where the file has no such column), for the spread over people.

    Optional ``obs_<expression>`` columns give the share of a norm set's raters who
    chose each expression for the photo (-1 or empty: not rated). Where one names the
    photo's label, the photos carry the expression most raters chose (``raters``):
    a posed label is what the performer meant, which people do not always see.

    Anyone with their own labelled photos can score the device on them this way,
    with no npz to build first.
    """
    folder = Path(folder)
    table = folder / LABELS_FILE
    if not table.is_file():
        raise DatasetError(f"{folder}: no {LABELS_FILE} (a header with file,label and one row per photo)")
    if table.stat().st_size > MAX_LABELS_BYTES:
        raise DatasetError(f"{table}: bigger than {MAX_LABELS_BYTES >> 20} MB, not a list of photos")
    try:
        rows = list(csv.DictReader(table.read_text(encoding="utf-8").splitlines()))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{table}: not a readable CSV file ({exc})") from None
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise DatasetError(f"{table}: needs a header with file and label columns and at least one row")
    root = folder.resolve()
    rated = [c for c in rows[0] if c and c.startswith(RATER_PREFIX)]
    images, names, people, raters = [], [], [], []
    for line, row in enumerate(rows, start=2):
        name, label = (row.get("file") or "").strip(), (row.get("label") or "").strip()
        if not name or not label:
            raise DatasetError(f"{table} line {line}: no file or no label")
        path = (folder / name).resolve()
        if not path.is_relative_to(root):
            raise DatasetError(f"{table} line {line}: {name} lies outside {folder}")
        if not path.is_file():
            raise DatasetError(f"{table} line {line}: no such photo {name}")
        if path.stat().st_size == 0:
            raise DatasetError(f"{table} line {line}: {name} is empty")
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError(f"{table} line {line}: {name} is not an image OpenCV can read")
        images.append(image)
        names.append(label)
        people.append((row.get("performer") or "").strip())
        raters.append(_raters_choice(row, rated, label, f"{table} line {line}"))
    classes = tuple(sorted(set(names)))
    labels = np.array([classes.index(n) for n in names], np.int64)
    return PhotoSet(images, labels, classes, raters=tuple(raters) if rated else None), people


def _raters_choice(row: dict[str, str], columns: list[str], label: str, where: str) -> str:
    """The expression most raters chose for one row, "" where it was not rated or the
    raters had no ``label`` among their choices."""
    shares = {}
    for column in columns:
        text = (row.get(column) or "").strip()
        try:
            shares[column.removeprefix(RATER_PREFIX)] = float(text) if text else -1.0
        except ValueError:
            raise DatasetError(f"{where}: {column} {text!r} is not a share of raters") from None
    if shares.get(label, -1.0) < 0:
        return ""
    return max(shares, key=shares.__getitem__)


def _face_boxes(path: Path, photos: list[np.ndarray]) -> np.ndarray | None:
    """The ``boxes`` array of a photo file (``tools.data.scenes`` records where it put each
    face), checked to lie inside each photo; None when the file has none."""
    with np.load(path, allow_pickle=False) as data:
        if "boxes" not in data.files:
            return None
        boxes = data["boxes"]
    if boxes.shape != (len(photos), 4) or not np.issubdtype(boxes.dtype, np.integer):
        raise DatasetError(f"{path}: boxes must be integer (N, 4) x, y, w, h for {len(photos)} photos, "
                           f"got {boxes.dtype} {boxes.shape}")
    for i, ((x, y, w, h), image) in enumerate(zip(boxes, photos, strict=True)):
        if w < 1 or h < 1 or x < 0 or y < 0 or x + w > image.shape[1] or y + h > image.shape[0]:
            raise DatasetError(f"{path}: box {i} ({x}, {y}, {w}, {h}) does not lie inside its "
                               f"{image.shape[1]}x{image.shape[0]} photo")
    return boxes.astype(np.int64)


def data_dir() -> Path:
    """Where the FER2013 files are: ``$FACECUE_DATA`` when set, else ``../shared/data/fer2013``."""
    return Path(os.environ[DATA_ENV]) if os.environ.get(DATA_ENV) else SHARED_DATA


def missing_split(split: str) -> str:
    """Why no ``{split}.npz`` was found and where one comes from, in one line: a newcomer's
    clone has no ``../shared``, and "--data is required" names neither."""
    where = (f"$FACECUE_DATA ({os.environ[DATA_ENV]})" if os.environ.get(DATA_ENV)
             else f"$FACECUE_DATA (not set) nor {SHARED_DATA}")
    return (f"no {split}.npz in {where}: give --data, or set FACECUE_DATA to a folder with FER2013's faces as "
            "train.npz and valid.npz (see docs/development.md, \"The data\")")


def shared_split(split: str) -> Path | None:
    """Path of ``{split}.npz`` in :func:`data_dir` when it is there."""
    path = data_dir() / f"{split}.npz"
    return path if path.is_file() else None
