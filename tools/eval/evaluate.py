"""``facecue-model eval``: score a shipped ``.tflite`` on a labelled npz, as the device runs it.

    facecue-model eval --data ../shared/data/fer2013/valid.npz [--model PATH] [--threads N]
                 [--against OLD.tflite]
    facecue-model eval --detect [--method yunet|haar] --data PHOTOS.npz ...
    facecue-model eval --data valid.npz --votes ../shared/data/ferplus/valid.npz
    facecue-model eval --detect --data FOLDER      # photos listed in FOLDER/labels.csv (file,label)

Every face goes through the model's own ``Classifier.preprocess`` (the
preprocessing parameters in its JSON) and the LiteRT interpreter, exactly as
on the hat, so the accuracy printed here is the wearer's accuracy, not the
Keras model's. Needs no TensorFlow. The last line is fixed for scripts:
``accuracy A macro_f1 F n N``.

``--detect`` scores photos instead of face crops: the device's own detector
finds the largest face in each photo and the model's own crop (aligned or
box) cuts it out, so the figure includes what the detector misses. A photo
with no face found counts as wrong; ``found F of N`` and the accuracy on the
faces found are printed as well.

A scene set that records where each face was pasted (``boxes``, as
``facecue-model scenes fer`` writes) also gets a table by face width:
the faces found, the accuracy on them, and the accuracy on the same faces cut
from their paste box as a training face is cut. The paste box is the framing
the face had as a crop, so the two columns apart show what the device's
detector and crop cost, size by size.

``--votes`` scores face crops against the FER+ majority vote of each row
instead of its FER2013 label (``tools.data.ferplus`` says which rows count).
A folder of photos with a ``labels.csv`` is read as it is; where the file has a
``performer`` column, the spread of accuracy over the people is printed too:
with a few people, a gain of some points can belong to them alone. Where it
has a norm set's rater columns (``obs_<expression>``), a table says how often
most raters saw the posed expression, and the model's recall on those photos.

``--against`` scores a second model on the same faces and prints a paired
(McNemar) comparison: a candidate model replaces the shipped one only when
it wins on the faces where the two disagree, not on a 0.2 pt difference.
A table of accuracy against the top probability shows what the wearer hears
with ``[decide] min_confidence`` set to each value.
"""
from __future__ import annotations

import argparse
import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np

from core.frames import FaceBox
from device.argparser import Parser, UsageError, bounded
from device.classify import Classifier
from device.config import DecideConfig, DetectConfig
from device.detect import METHODS
from device.tracker import tracker_from_config
from models import DEFAULT_MODEL
from tools.data.dataset import (
    DatasetError,
    FaceSet,
    PhotoSet,
    load_faces,
    load_photo_folder,
    load_photos,
    missing_split,
    shared_split,
)
from tools.data.ferplus import majority_faces
from tools.eval.metrics import Scores, confidence_table, paired_comparison, score

CONFIDENCE_STEPS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9)  # rows of the table; the configured default is added
WIDTH_BANDS = (60, 80, 100, 150, 200)  # lower edges (px) of the rows of the table by face width


def predict_probabilities(classifier: Classifier, faces: np.ndarray, batch: int = 256) -> np.ndarray:
    """(N, S, S) preprocessed uint8 faces -> (N, classes), in interpreter batches
    small enough that a float model's activations stay within a Pi's memory."""
    return np.concatenate([classifier.probabilities(faces[i:i + batch]) for i in range(0, len(faces), batch)])


def labels_in_model_order(data: FaceSet, model_labels: tuple[str, ...]) -> np.ndarray:
    """The data's labels as indices into the model's labels, matched by name, so an
    npz with its classes in another order is still scored right."""
    missing = [c for c in data.classes if c not in model_labels]
    if missing:
        raise DatasetError(f"data classes {missing} are not among the model's labels {list(model_labels)}")
    mapping = np.array([model_labels.index(c) for c in data.classes], np.int64)
    return mapping[data.labels]


def find_faces(photos: PhotoSet, detect: DetectConfig) -> list[FaceBox | None]:
    """The face the device would speak about in each photo, each photo on its own, as the
    device settles on it when it holds still (see :meth:`FaceTracker.settle`)."""
    tracker = tracker_from_config(detect)
    return [tracker.settle(image) for image in photos.images]


def model_answers(model: str | Path, data: FaceSet | PhotoSet, threads: int = 1,
                  boxes: list[FaceBox | None] | None = None,
                  calibrated: bool = True) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(true labels, probabilities, label names) of ``model`` on ``data``, labels as indices
    into the model's own labels, through the device's preprocessing and interpreter.
    With ``boxes`` (photos), a photo whose box is None gets all-zero probabilities.
    ``calibrated=False`` leaves out the model's temperature (see ``tools.eval.calibrate``)."""
    if len(data) == 0:
        raise DatasetError("the data set holds no faces")
    classifier = Classifier(model, num_threads=threads, calibrated=calibrated)
    truth = labels_in_model_order(data, classifier.labels)
    if boxes is None:
        faces = np.stack([classifier.preprocess(image) for image in data.images])
        return truth, predict_probabilities(classifier, faces), classifier.labels
    found = [i for i, box in enumerate(boxes) if box is not None]
    probs = np.zeros((len(data), len(classifier.labels)), np.float32)
    if found:
        faces = np.stack([classifier.preprocess(data.images[i], boxes[i]) for i in found])
        probs[found] = predict_probabilities(classifier, faces)
    return truth, probs, classifier.labels


def answers(probs: np.ndarray, boxes: list[FaceBox | None] | None = None) -> np.ndarray:
    """The predicted label of each face, -1 for a photo where no face was found."""
    predicted = probs.argmax(axis=1)
    if boxes is not None:
        predicted[[box is None for box in boxes]] = -1
    return predicted


def paste_box_answers(model: str | Path, photos: PhotoSet, threads: int = 1) -> np.ndarray:
    """The predicted label (model order) of each photo's face cut from its recorded box, as
    a training face is cut: what the model makes of the face with the framing it was pasted in."""
    if photos.boxes is None:
        raise DatasetError("the photos record no face boxes")
    classifier = Classifier(model, num_threads=threads)
    faces = np.stack([classifier.preprocess(image[y:y + h, x:x + w])
                      for image, (x, y, w, h) in zip(photos.images, photos.boxes, strict=True)])
    return predict_probabilities(classifier, faces).argmax(axis=1)


def width_table(truth: np.ndarray, predicted: np.ndarray, boxed: np.ndarray, widths: np.ndarray) -> str:
    """Per face-width band: photos, faces found, accuracy on them through the device's crop
    (``predicted``, -1 where none was found) and through the paste box (``boxed``)."""
    edges = [*WIDTH_BANDS, np.inf]
    rows = [(f"{lo}-{hi - 1}" if np.isfinite(hi) else f">= {lo}", (widths >= lo) & (widths < hi))
            for lo, hi in itertools.pairwise(edges)]
    rows = [(f"< {WIDTH_BANDS[0]}", widths < WIDTH_BANDS[0]), *rows, ("all", np.ones(len(widths), bool))]
    lines = [f"{'width px':>9} {'photos':>7} {'found':>6} {'device':>7} {'paste box':>9}"]
    for name, band in rows:
        if not band.any():
            continue
        found = band & (predicted != -1)
        device = f"{(predicted[found] == truth[found]).mean():.4f}" if found.any() else "-"
        boxed_right = f"{(boxed[found] == truth[found]).mean():.4f}" if found.any() else "-"
        lines.append(f"{name:>9} {int(band.sum()):>7} {int(found.sum()):>6} {device:>7} {boxed_right:>9}")
    return "\n".join(lines)


def rater_table(truth: np.ndarray, predicted: np.ndarray, raters: tuple[str, ...],
                labels: tuple[str, ...]) -> str:
    """Per posed expression, on the photos whose raters could choose it: how many of them
    most raters saw as posed, and the model's recall on those. Why: where people do not
    see the posed expression either, a model's recall on it has little to gain."""
    seen = np.array([labels.index(r) if r in labels else -1 for r in raters])
    rated = np.array([r != "" for r in raters])
    lines = [f"{'':9} {'raters saw it':>18} {'model right there':>19}"]
    for k, name in enumerate(labels):
        rows = rated & (truth == k)
        if not rows.any():
            continue
        agree = rows & (seen == k)
        n, saw, right = int(rows.sum()), int(agree.sum()), int((predicted[agree] == k).sum())
        lines.append(f"{name:9} {saw:>6}/{n:<4} {saw / n:6.1%} {right:>7}/{saw:<4}"
                     + (f" {right / saw:6.1%}" if saw else ""))
    return "\n".join(lines)


def performer_spread(right: np.ndarray, people: list[str]) -> str:
    """Accuracy per person, summarised: how many people, and the lowest, median and highest."""
    names = sorted(set(people))
    acc = np.array([right[[p == name for p in people]].mean() for name in names])
    worst, best = names[int(acc.argmin())], names[int(acc.argmax())]
    return (f"by performer ({len(names)}): lowest {acc.min():.4f} ({worst}), median {np.median(acc):.4f}, "
            f"highest {acc.max():.4f} ({best}), standard deviation {acc.std():.4f}")


def load_data(args: argparse.Namespace) -> tuple[FaceSet | PhotoSet, list[str]]:
    """The data ``--data`` names (an npz or a folder of photos), relabelled by ``--votes``
    where given, and each face's performer (empty where unknown)."""
    if args.data.is_dir():
        if not args.detect:
            raise UsageError(f"{args.data} is a folder of photos: add --detect to find the faces in them")
        return load_photo_folder(args.data)
    if args.detect:
        data: FaceSet | PhotoSet = load_photos(args.data)
    else:
        data = load_faces(args.data)
    if args.votes is not None:
        if args.detect:
            raise UsageError("--votes relabels face crops; photos found with --detect carry their own labels")
        data = majority_faces(data, args.votes)
    return data, [""] * len(data)


def evaluate_model(model: str | Path, data: FaceSet, threads: int = 1) -> Scores:
    """Scores of ``model`` on ``data`` as the wearer's device would classify them."""
    truth, probs, labels = model_answers(model, data, threads)
    return score(truth, answers(probs), labels)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = Parser(prog="facecue-model eval", description=__doc__.splitlines()[0].replace("``", ""))
    valid = shared_split("valid")
    p.add_argument("--data", type=Path, default=valid,
                   help="npz with images, labels, classes: face crops, or photos with --detect; or a folder of "
                        "photos with a labels.csv (file,label), with --detect (default "
                        "valid.npz in $FACECUE_DATA, else ../shared/data/fer2013, when there)")
    p.add_argument("--votes", type=Path, metavar="FERPLUS.npz",
                   help="score against the FER+ majority votes of the --data rows (e.g. "
                        "../shared/data/ferplus/valid.npz) instead of their FER2013 labels")
    p.add_argument("--detect", action="store_true",
                   help="the images are photos: find each face with the device's detector and crop it as "
                        "the device does; a photo without a face found counts as wrong")
    p.add_argument("--method", choices=METHODS, default=DetectConfig().method,
                   help="with --detect: the face detector (default %(default)s)")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL,
                   help=f"a .tflite with its .json (default {DEFAULT_MODEL.name})")
    p.add_argument("--threads", type=bounded(int, at_least=1), default=1, help="interpreter threads")
    p.add_argument("--against", type=Path, metavar="OLD",
                   help="a second .tflite to compare with --model, face by face (McNemar)")
    args = p.parse_args(argv)
    if args.data is None:
        p.error(missing_split("valid"))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data, people = load_data(args)
    boxes = find_faces(data, replace(DetectConfig(), method=args.method)) if args.detect else None
    truth, probs, labels = model_answers(args.model, data, args.threads, boxes)
    old = model_answers(args.against, data, args.threads, boxes) if args.against else None
    boxed = paste_box_answers(args.model, data, args.threads) \
        if args.detect and isinstance(data, PhotoSet) and data.boxes is not None else None
    predicted = answers(probs, boxes)
    scores = score(truth, predicted, labels)
    found = predicted != -1
    print(f"model {args.model} on {args.data}" + (f" (detector {args.method})" if args.detect else "")
          + (f", against the FER+ majority of {len(data)} faces in {args.votes}" if args.votes else ""))
    if args.detect:
        on_found = score(truth[found], predicted[found], labels)
        print(f"on the faces found: {on_found.summary_line()}")
        print("recall below counts a photo with no face found as wrong")
    print(scores.recall_table())
    if any(people):
        print(performer_spread(predicted == truth, people))
    if isinstance(data, PhotoSet) and data.raters is not None:
        print("by the photos' raters (labels.csv obs_*), where they could choose the posed expression")
        print(rater_table(truth, predicted, data.raters, labels))
    print(scores.confusion_table())
    default = DecideConfig().min_confidence
    print(f"by top probability (the device's default [decide] min_confidence is {default})"
          + (", on the faces found" if args.detect else ""))
    print(confidence_table(truth[found], probs[found], sorted({*CONFIDENCE_STEPS, default})))
    if boxed is not None:
        print("by face width, on the faces found; paste box: the same faces cut from the box they were pasted in")
        print(width_table(truth, predicted, boxed, data.boxes[:, 2]))
    if old is not None:
        old_truth, old_probs, old_labels = old
        old_predicted = answers(old_probs, boxes)
        print(f"against {args.against}: {score(old_truth, old_predicted, old_labels).summary_line()}")
        print(paired_comparison(predicted == truth, old_predicted == old_truth).line())
    if args.detect:
        print(f"found {int(found.sum())} of {len(found)}")
    print(scores.summary_line())
    return 0
