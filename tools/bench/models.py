"""Seconds per prediction and accuracy of one model, the way Table I counts them.

Table I of the DeepLens study gives seconds per prediction over 50 images.
Here each of the 50 faces is one single-face invoke (what the wearer's loop
does), timed after a warm-up, and the figure is the median of several
passes so one hiccup of a shared CPU does not make the number. Accuracy is
counted by label *name*, so a model with another label order (the ``fer``
peer) is scored on the same footing.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from device.classify import Classifier, ModelError, read_model_info
from device.preprocess import preprocess_batch
from tools.data.dataset import FaceSet, load_faces

SAMPLE_SEED = 0


class Scorer(Protocol):
    """A model under test: raw face crops in, probabilities over ``labels`` out."""

    labels: tuple[str, ...]

    def prepare(self, crops: np.ndarray) -> np.ndarray: ...

    def probabilities(self, faces: np.ndarray) -> np.ndarray: ...


class DeviceScorer:
    """A shipped or bench-built ``.tflite`` run through the device's own :class:`Classifier`."""

    def __init__(self, path: Path, num_threads: int = 1) -> None:
        self.classifier = Classifier(path, num_threads=num_threads)
        self.labels = self.classifier.labels

    def prepare(self, crops: np.ndarray) -> np.ndarray:
        return preprocess_batch(crops, **self.classifier.info.preprocessing)

    def probabilities(self, faces: np.ndarray) -> np.ndarray:
        return self.classifier.probabilities(faces)


@dataclass(frozen=True)
class Faces:
    """Raw grey crops to score, with their label names (None: unlabelled stand-ins)."""

    crops: np.ndarray
    names: np.ndarray | None
    source: str

    def __len__(self) -> int:
        return len(self.crops)


def labelled(faces: FaceSet, source: str) -> Faces:
    return Faces(faces.images, np.asarray(faces.classes)[faces.labels], source)


def bench_faces(data: Path | None, n: int) -> tuple[Faces, Faces | None]:
    """``n`` faces for timing (a fixed random pick of the split) and the whole split.

    Without data the timing faces are seeded noise: speed does not depend on
    the pixels, and accuracy is then reported as n/a rather than invented.
    """
    rng = np.random.default_rng(SAMPLE_SEED)
    if data is None:
        noise = rng.integers(0, 256, (n, 48, 48), dtype=np.uint8)
        return Faces(noise, None, f"{n} noise faces (no data)"), None
    full = labelled(load_faces(data), str(data))
    if len(full) < n:
        raise ValueError(f"{data} holds {len(full)} faces; the bench needs at least {n}")
    pick = np.sort(rng.choice(len(full), n, replace=False))
    return Faces(full.crops[pick], full.names[pick], f"{n} faces of {data.name} (seed {SAMPLE_SEED})"), full


def seconds_per_prediction(predict: Callable[[np.ndarray], np.ndarray], faces: np.ndarray,
                           repeats: int, warmup: int) -> list[float]:
    """Mean seconds of one single-face ``predict`` over ``faces``, once per repeat."""
    for face in faces[:warmup]:
        predict(face[None])
    per_pass = []
    for _ in range(repeats):
        start = time.perf_counter()
        for face in faces:
            predict(face[None])
        per_pass.append((time.perf_counter() - start) / len(faces))
    return per_pass


def accuracy(scorer: Scorer, faces: Faces, batch: int = 64) -> float:
    """Share of ``faces`` whose top label (by name) is the true one."""
    prepared = scorer.prepare(faces.crops)
    probs = np.concatenate([scorer.probabilities(prepared[i:i + batch])
                            for i in range(0, len(prepared), batch)])
    predicted = np.asarray(scorer.labels)[probs.argmax(axis=1)]
    return float(np.mean(predicted == faces.names))


@dataclass
class ModelRow:
    """One line of our half of Table I; a skipped model keeps its line and says why."""

    key: str
    model: str
    precision: str
    path: str | None = None
    size_mb: float | None = None
    macs: int | None = None  # multiply-accumulates per face, from the model's JSON
    ms: float | None = None  # median ms per prediction
    ms_passes: list[float] | None = None
    acc_faces: float | None = None
    acc_valid: float | None = None
    valid_n: int | None = None
    note: str = ""


def measure(row: ModelRow, scorer: Scorer, sample: Faces, full: Faces | None, *, trained: bool,
            repeats: int, warmup: int) -> ModelRow:
    """Fill ``row`` with the speed and (for a trained model on labelled faces) accuracy of ``scorer``.

    Timing runs first, at batch 1, before the accuracy pass resizes the
    interpreter for batches.
    """
    prepared = scorer.prepare(sample.crops)
    passes = seconds_per_prediction(scorer.probabilities, prepared, repeats, warmup)
    row.ms = statistics.median(passes) * 1e3
    row.ms_passes = [round(p * 1e3, 4) for p in passes]
    if not trained:
        row.note = row.note or "untrained: accuracy n/a"
        return row
    if sample.names is not None:
        row.acc_faces = accuracy(scorer, sample)
    if full is not None:
        row.acc_valid, row.valid_n = accuracy(scorer, full), len(full)
    return row


def file_row(key: str, model: str, precision: str, path: Path) -> ModelRow:
    """A row for the model file at ``path`` (size and, from its JSON, MACs; speed still to measure)."""
    try:
        macs = read_model_info(path, verify_checksum=False).meta.get("macs")
    except ModelError:  # the peer's file has no JSON
        macs = None
    return ModelRow(key, model, precision, str(path), round(path.stat().st_size / 2**20, 3),
                    int(macs) if isinstance(macs, (int, float)) else None)
