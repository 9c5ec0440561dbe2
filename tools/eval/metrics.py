"""Classification scores from a confusion matrix: accuracy, per-class recall, macro-F1.

The training report, ``facecue-model eval``, the export check and the benchmark
all score models here, so a figure in the model card, the run report and the
benchmark table always means the same thing. NumPy only: it runs on the device.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import comb, sqrt
from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts; row = true class, column = predicted class."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_true)} labels but {len(y_pred)} predictions")
    for name, y in (("labels", y_true), ("predictions", y_pred)):
        if len(y) and (y.min() < 0 or y.max() >= n_classes):
            raise ValueError(f"{name} outside 0..{n_classes - 1}")
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (a class absent from the data scores 0, not NaN)."""
    num, den = num.astype(np.float64), den.astype(np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


@dataclass(frozen=True)
class Scores:
    """Everything reported about one model on one labelled set."""

    confusion: np.ndarray
    classes: tuple[str, ...]
    missed: np.ndarray | None = None  # per true class: faces given no answer (no face found); they count wrong

    @property
    def truth_counts(self) -> np.ndarray:
        counts = self.confusion.sum(axis=1)
        return counts + self.missed if self.missed is not None else counts

    @property
    def n(self) -> int:
        return int(self.truth_counts.sum())

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion) / self.n) if self.n else 0.0

    @property
    def recall(self) -> np.ndarray:
        return _ratio(np.diag(self.confusion), self.truth_counts)

    @property
    def precision(self) -> np.ndarray:
        return _ratio(np.diag(self.confusion), self.confusion.sum(axis=0))

    @property
    def f1(self) -> np.ndarray:
        p, r = self.precision, self.recall
        return _ratio(2 * p * r, p + r)

    @property
    def macro_f1(self) -> float:
        """Unweighted mean F1 over classes: the rare ``disgust`` counts as much as ``happy``."""
        return float(self.f1.mean())

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "accuracy": self.accuracy, "macro_f1": self.macro_f1,
                "per_class_recall": dict(zip(self.classes, map(float, self.recall), strict=True)),
                "confusion": self.confusion.tolist()}

    def summary_line(self) -> str:
        """The last line of ``facecue-model eval``; scripts parse it, so its format is fixed."""
        return f"accuracy {self.accuracy:.4f} macro_f1 {self.macro_f1:.4f} n {self.n}"

    def recall_table(self) -> str:
        width = max(map(len, self.classes))
        rows = [f"{c:<{width}}  recall {r:.4f}  ({d}/{t})" for c, r, d, t in
                zip(self.classes, self.recall, np.diag(self.confusion), self.truth_counts, strict=True)]
        return "\n".join(rows)

    def confusion_table(self) -> str:
        """Plain-text matrix, true classes down, predictions across."""
        width = max(max(map(len, self.classes)), len(str(self.confusion.max())))
        head = " " * width + "  " + " ".join(f"{c[:width]:>{width}}" for c in self.classes)
        rows = [f"{c:<{width}}  " + " ".join(f"{v:>{width}d}" for v in row)
                for c, row in zip(self.classes, self.confusion, strict=True)]
        return "\n".join(["rows: true class, columns: predicted class", head, *rows])


def score(y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...] | list[str]) -> Scores:
    """Scores of predictions ``y_pred``; a prediction of -1 means no answer (no face
    found) and counts as wrong for its face's class."""
    classes = tuple(classes)
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_true)} labels but {len(y_pred)} predictions")
    answered = y_pred != -1
    confusion = confusion_matrix(y_true[answered], y_pred[answered], len(classes))
    if answered.all():
        return Scores(confusion, classes)
    return Scores(confusion, classes, np.bincount(y_true[~answered], minlength=len(classes)))


@dataclass(frozen=True)
class PairedComparison:
    """Which of two models is right where they disagree, on the same faces (McNemar's test).

    On 3,589 faces two accuracies 0.3 pt apart may be noise or a real gain; the
    faces both get right or both get wrong say nothing about which, so the
    decision to ship a new model rests on the discordant faces alone.
    """

    only_new: int  # faces the new model gets right and the old one wrong
    only_old: int  # and the other way round

    @property
    def z(self) -> float:
        """(only_new - only_old) / sqrt(only_new + only_old); 0 when the models never disagree."""
        n = self.only_new + self.only_old
        return (self.only_new - self.only_old) / sqrt(n) if n else 0.0

    @property
    def p_value(self) -> float:
        """Exact two-sided binomial p that the discordant faces split this unevenly by chance."""
        n = self.only_new + self.only_old
        tail = sum(comb(n, i) for i in range(min(self.only_new, self.only_old) + 1))
        return min(1.0, 2 * tail / 2**n)

    def line(self) -> str:
        return (f"paired: new right and old wrong {self.only_new}, old right and new wrong {self.only_old}, "
                f"z {self.z:+.2f}, p {self.p_value:.3f}")


def paired_comparison(new_right: np.ndarray, old_right: np.ndarray) -> PairedComparison:
    """Compare two models from their per-face right/wrong answers on the same faces, in the same order."""
    new_right, old_right = np.asarray(new_right, bool), np.asarray(old_right, bool)
    if new_right.shape != old_right.shape:
        raise ValueError(f"{len(new_right)} answers against {len(old_right)}: not the same faces")
    return PairedComparison(int(np.sum(new_right & ~old_right)), int(np.sum(old_right & ~new_right)))


def confidence_table(truth: np.ndarray, probs: np.ndarray, thresholds: Sequence[float]) -> str:
    """For each threshold on the top probability: the share of faces the model is that
    confident on, and its accuracy on those.

    The device stays silent below ``[decide] min_confidence``, so a wearer hears
    the accuracy of the confident faces, not the overall one; this is the table
    a helper needs to set that option (a single face, without the smoothing
    over frames the device adds).
    """
    rows = ["confidence  faces    accuracy"]
    for threshold, kept, right in kept_and_right(truth, probs, thresholds):
        accuracy = f"{right:.4f}" if right is not None else "-"
        rows.append(f">= {threshold:.2f}     {kept:6.1%}   {accuracy}")
    return "\n".join(rows)


def kept_and_right(truth: np.ndarray, probs: np.ndarray,
                   thresholds: Sequence[float]) -> list[tuple[float, float, float | None]]:
    """Per threshold on the top probability: (threshold, share of faces at or above it,
    share of those that are right, or None when none is kept)."""
    top, right = probs.max(axis=1), probs.argmax(axis=1) == truth
    return [(t, float(np.mean(top >= t)), float(right[top >= t].mean()) if np.any(top >= t) else None)
            for t in thresholds]


def describe_int8_drop(drop_pt: float) -> str:
    """How int8 fared against float, in words: quantisation can land a model a few faces
    higher, and "drop -0.20 pt" reads like a typo."""
    if drop_pt < 0:
        return f"{-drop_pt:.2f} pt above float"
    return f"drop {drop_pt:.2f} pt"
