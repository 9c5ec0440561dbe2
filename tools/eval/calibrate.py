"""Fit a model's softmax temperature on validation, so [decide] min_confidence means what it says.

    facecue-model calibrate --model models/facecue_vgg_elu_int8.tflite --scenes SCENES.npz [--write]
        [--votes ../shared/data/ferplus/valid.npz]

A network trained with cross-entropy is often over-confident on faces unlike
its training crops: a top probability of 0.5 may be right far less than half
the time through the device's detector and crop. One temperature T (logits
divided by T; Guo et al., 2017) fitted by log-likelihood on validation keeps
every answer and fixes what the probabilities mean. It is fitted on the
device path (validation faces composited into real scenes by ``tools.data.scenes
fer``, found and cropped by the device's own detector) because that is what
the wearer's device sees; the crops are reported beside it.

With ``--votes`` (the FER+ votes of the validation split the scenes and crops
were made from) every face is labelled by its raters' majority instead of its
FER2013 label, and faces without one are left out: a model trained on the votes
is calibrated against what ten people saw, not against one noisy label.

The table printed gives, per threshold on the top probability, the share of
faces kept and how many of them are right, before and after, on both paths:
the table to choose ``min_confidence`` from. ``--write`` stores the
temperature in the model's JSON (``calibration``), where the classifier
applies it; the ``.tflite`` is unchanged.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.files import write_atomic
from core.frames import FaceBox
from device.argparser import Parser, UsageError, bounded
from device.classify import apply_temperature, metadata_path, read_model_info
from device.config import DetectConfig
from models import DEFAULT_MODEL
from tools.data.dataset import DatasetError, FaceSet, PhotoSet, load_faces, load_photos, shared_split
from tools.data.ferplus import load_votes, majority_faces
from tools.eval.evaluate import find_faces, model_answers
from tools.eval.metrics import kept_and_right, score

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
GRID = np.round(np.arange(0.2, 4.0 + 1e-9, 0.01), 2)  # a model trained on soft targets can be under-confident
LOG_FLOOR = 1e-4  # an int8 file rounds small probabilities to 0; their log is taken at this floor
ECE_BINS = 15


@dataclass(frozen=True)
class PathAnswers:
    """One validation path's true labels and uncalibrated probabilities (faces found only)."""

    name: str
    truth: np.ndarray
    probs: np.ndarray


def nll(truth: np.ndarray, probs: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the true labels at ``temperature``."""
    logp = np.log(np.maximum(probs, LOG_FLOOR)) / temperature
    logp -= logp.max(axis=1, keepdims=True)
    logz = np.log(np.exp(logp).sum(axis=1))
    return float(np.mean(logz - logp[np.arange(len(truth)), truth]))


def fit_temperature(truth: np.ndarray, probs: np.ndarray) -> float:
    """The temperature on a 0.01 grid from 0.2 to 4 with the least NLL: one
    parameter, so a grid is exact enough and cannot diverge."""
    if len(truth) == 0:
        raise DatasetError("no faces to fit a temperature on")
    losses = [nll(truth, probs, float(t)) for t in GRID]
    return float(GRID[int(np.argmin(losses))])


def expected_calibration_error(truth: np.ndarray, probs: np.ndarray) -> float:
    """Gap between confidence and accuracy, averaged over equal-width bins of the top probability."""
    top, right = probs.max(axis=1), probs.argmax(axis=1) == truth
    bins = np.minimum((top * ECE_BINS).astype(int), ECE_BINS - 1)
    gap = sum(abs(right[bins == b].mean() - top[bins == b].mean()) * np.mean(bins == b)
              for b in range(ECE_BINS) if np.any(bins == b))
    return float(gap)


def table(paths: list[PathAnswers], temperature: float, thresholds=THRESHOLDS) -> str:
    """Kept share and accuracy of the kept faces per threshold, before -> after, per path."""
    head = "top prob  " + "".join(f"| {p.name} kept, right (before -> after)".ljust(48) for p in paths)
    rows = [head]
    columns = [[kept_and_right(p.truth, probs, thresholds)
                for probs in (p.probs, apply_temperature(p.probs, temperature))] for p in paths]
    for k, threshold in enumerate(thresholds):
        cells = []
        for before, after in columns:
            pair = [f"{kept:5.1%} {right:6.1%}" if right is not None else "   -      -  "
                    for _, kept, right in (before[k], after[k])]
            cells.append(f"| {pair[0]} -> {pair[1]}".ljust(48))
        rows.append(f">= {threshold:.2f}   " + "".join(cells))
    return "\n".join(rows)


@dataclass(frozen=True)
class ValidationSets:
    """What every model is scored on, read (and its faces found) once for all of them."""

    photos: PhotoSet | None
    boxes: list[FaceBox | None] | None
    crops: FaceSet | None
    labelled_by: str = "FER2013 labels"

    @classmethod
    def load(cls, scenes: Path | None, crops: Path | None, votes: Path | None = None) -> "ValidationSets":
        photos = load_photos(scenes) if scenes is not None else None
        faces = load_faces(crops) if crops is not None else None
        if votes is not None:
            photos, faces = relabel_by_votes(votes, scenes, photos, faces)
        boxes = find_faces(photos, DetectConfig()) if photos is not None else None
        return cls(photos, boxes, faces, "FER+ majority" if votes is not None else cls.labelled_by)


def relabel_by_votes(votes_file: Path, scenes: Path | None, photos: PhotoSet | None,
                     faces: FaceSet | None) -> tuple[PhotoSet | None, FaceSet | None]:
    """Scenes and crops labelled by the FER+ majority of the validation faces they show,
    without the faces that have none. A scene set says which face it shows in ``source``."""
    if faces is not None:
        faces = majority_faces(faces, votes_file)
    if photos is not None:
        with np.load(scenes, allow_pickle=False) as data:
            if "source" not in data.files:
                raise DatasetError(f"{scenes}: records no source faces (make it with tools.data.scenes fer)")
            source = data["source"]
        votes = load_votes(votes_file, photos.classes)
        n = len(votes.usable)
        if len(source) != len(photos) or (len(source) and (source.min() < 0 or source.max() >= n)):
            raise DatasetError(f"{scenes}: its source faces are not rows of {votes_file}")
        keep = votes.usable[source]
        photos = PhotoSet([image for image, k in zip(photos.images, keep, strict=True) if k],
                          votes.majority[source[keep]], photos.classes,
                          photos.boxes[keep] if photos.boxes is not None else None)
    return photos, faces


def path_answers(model: Path, sets: ValidationSets, threads: int) -> tuple[list[PathAnswers], tuple[str, ...]]:
    """The uncalibrated answers of ``model`` on the device path and on the crops given, and its labels."""
    paths, labels = [], ()
    if sets.photos is not None:
        truth, probs, labels = model_answers(model, sets.photos, threads, sets.boxes, calibrated=False)
        found = np.array([box is not None for box in sets.boxes])
        paths.append(PathAnswers(f"device path ({found.sum()} of {len(found)} found, {sets.labelled_by})",
                                 truth[found], probs[found]))
    if sets.crops is not None:
        truth, probs, labels = model_answers(model, sets.crops, threads, calibrated=False)
        paths.append(PathAnswers(f"crops ({len(truth)}, {sets.labelled_by})", truth, probs))
    return paths, labels


def store_temperature(model: Path, temperature: float, fitted_on: PathAnswers, labels: tuple[str, ...]) -> None:
    """Write the temperature, and how the model did on the path it was fitted on, into the
    model's JSON (atomically; the rest untouched), so the model card can quote both paths."""
    meta_file = metadata_path(model)
    meta = json.loads(meta_file.read_text())
    scores = score(fitted_on.truth, fitted_on.probs.argmax(axis=1), labels)
    meta["calibration"] = {
        "temperature": temperature,
        "fitted_on": fitted_on.name,
        "nll": [round(nll(fitted_on.truth, fitted_on.probs, 1.0), 4),
                round(nll(fitted_on.truth, fitted_on.probs, temperature), 4)],
        "accuracy": scores.accuracy,
        "per_class_recall": dict(zip(labels, map(float, scores.recall), strict=True)),
        "table": confidence_rows(fitted_on, temperature),
    }
    write_atomic(meta_file, json.dumps(meta, indent=1).encode())


def confidence_rows(path: PathAnswers, temperature: float) -> list[dict[str, float]]:
    """Per threshold: the share of faces kept and the share of those right, calibrated."""
    rows = kept_and_right(path.truth, apply_temperature(path.probs, temperature), THRESHOLDS)
    return [{"min_confidence": t, "kept": round(kept, 4), "right": round(right, 4) if right is not None else 0.0}
            for t, kept, right in rows]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = Parser(prog="facecue-model calibrate", description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, nargs="+", default=[DEFAULT_MODEL],
                   help="one or more .tflite files with their .json, each fitted on its own")
    p.add_argument("--scenes", type=Path,
                   help="validation faces in real scenes (facecue-model scenes fer): the path the temperature "
                        "is fitted on")
    p.add_argument("--crops", type=Path, default=shared_split("valid"),
                   help="validation face crops, reported beside (default ../shared/.../valid.npz when present)")
    p.add_argument("--votes", type=Path, metavar="FERPLUS.npz",
                   help="FER+ votes of the validation split: label every face by its raters' majority")
    p.add_argument("--threads", type=bounded(int, at_least=1), default=1, help="interpreter threads")
    p.add_argument("--write", action="store_true", help="store the fitted temperature in the model's JSON")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.scenes is None and args.crops is None:
        raise UsageError("nothing to fit on: give --scenes (and --crops)")
    sets = ValidationSets.load(args.scenes, args.crops, args.votes)
    for model in args.model:
        calibrate_model(model, sets, args.threads, args.write)
    return 0


def calibrate_model(model: Path, sets: ValidationSets, threads: int, write: bool) -> None:
    """Fit, report and (with ``write``) store one model's temperature."""
    before = read_model_info(model).temperature
    paths, labels = path_answers(model, sets, threads)
    fitted_on = paths[0]
    temperature = fit_temperature(fitted_on.truth, fitted_on.probs)
    print(f"model {model}: temperature {before} in its JSON, fitted {temperature} on {fitted_on.name}")
    for p in paths:
        print(f"{p.name}: NLL {nll(p.truth, p.probs, 1.0):.4f} -> {nll(p.truth, p.probs, temperature):.4f}, "
              f"ECE {expected_calibration_error(p.truth, p.probs):.4f} -> "
              f"{expected_calibration_error(p.truth, apply_temperature(p.probs, temperature)):.4f}, "
              f"accuracy {np.mean(p.probs.argmax(1) == p.truth):.4f}")
    print(table(paths, temperature))
    if write:
        store_temperature(model, temperature, fitted_on, labels)
        print(f"wrote temperature {temperature} to {metadata_path(model)}")
