"""Loading face data sets in the shared FER2013 ``.npz`` format.

One loader for training, evaluation and benchmarks, so a malformed file is
rejected with the same one-line message everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.preprocess import preprocess_batch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fer2013"


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


def load_faces(path: str | Path) -> FaceSet:
    """Read ``images``/``labels``/``classes`` from an npz, checking shapes and ranges."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such data file")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = {"images", "labels", "classes"} - set(data.files)
            if missing:
                raise DatasetError(f"{path}: missing arrays {sorted(missing)}")
            images, labels, classes = data["images"], data["labels"], data["classes"]
    except DatasetError:
        raise
    except Exception as exc:  # zip/pickle/format errors all mean the same to a user
        raise DatasetError(f"{path}: not a readable npz file ({exc})") from None
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DatasetError(f"{path}: images must be uint8 (N, H, W), got {images.dtype} {images.shape}")
    if labels.shape != (len(images),):
        raise DatasetError(f"{path}: {len(labels)} labels for {len(images)} images")
    classes = tuple(str(c) for c in classes)
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise DatasetError(f"{path}: labels outside 0..{len(classes) - 1}")
    return FaceSet(images, labels.astype(np.int64), classes)


def shared_split(split: str) -> Path | None:
    """Path of ``../shared/data/fer2013/{split}.npz`` when it is there."""
    path = SHARED_DATA / f"{split}.npz"
    return path if path.is_file() else None
