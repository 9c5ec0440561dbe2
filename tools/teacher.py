"""Soft targets for knowledge distillation: the averaged predictions of finished runs on a data set.

    python -m tools.teacher --runs runs/cycle4 runs/cycle3 runs/wide2 --out runs/teacher.npz
    python -m tools.train --run runs/kd ... --teacher runs/teacher.npz --distill 0.5

Why: the shipped network has to stay one ~2 M-parameter net (3 MB, 2 ms per
face), but several such nets trained along different paths (the warm-restart
cycles, the wider variant) disagree on many faces, and their average knows
which wrong classes a face resembles (a fearful face that looks surprised).
Training the next network on a blend of that average and the one-hot label
passes this on at no cost on the device (Hinton et al., 2015; Furlanello et
al., 2018, for a teacher of the student's own size). Measured once so far
(``runs/kd1``, see models/README.md): with a 69 % teacher of three of our runs
the student ended level with 1.4.0, so the gain waits on a stronger teacher.

Each run scores every face and its mirror image with its best weights, through
the same mirror-averaging wrapper as the shipped file; the teacher is the mean
of those probabilities. The file records a hash of the faces it labelled, so
training refuses a teacher made for other data.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools.augment import to_input
from tools.dataset import DatasetError, FaceSet, load_faces, shared_split
from tools.export import with_flip_average
from tools.train import load_run, write_atomic


class TeacherError(ValueError):
    """A teacher file that cannot be used with the data at hand; one line for the user."""


def faces_digest(images: np.ndarray) -> str:
    """sha256 of the raw face pixels, the identity of a data set whatever its file is called."""
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()


@dataclass(frozen=True)
class Teacher:
    probs: np.ndarray  # (N, classes) float32, rows summing to 1, in the data set's face order
    classes: tuple[str, ...]
    digest: str  # faces_digest of the faces they belong to
    runs: tuple[str, ...]


def make_teacher(runs: Sequence[Path], data: FaceSet, log=print) -> Teacher:
    """The flip-averaged mean prediction of ``runs`` (their best weights) on ``data``."""
    if not runs:
        raise TeacherError("a teacher needs at least one run")
    x = to_input(data.preprocessed())
    total = np.zeros((len(data), len(data.classes)), np.float64)
    for run in runs:
        finished = load_run(Path(run), valid="")
        if finished.classes != data.classes:
            raise TeacherError(f"{run} predicts {list(finished.classes)}, the data holds {list(data.classes)}")
        probs = np.asarray(with_flip_average(finished.model).predict(x, batch_size=256, verbose=0), np.float64)
        log(f"{run}: accuracy {np.mean(probs.argmax(axis=1) == data.labels):.4f} on these faces")
        total += probs
    probs = (total / len(runs)).astype(np.float32)
    log(f"teacher of {len(runs)}: accuracy {np.mean(probs.argmax(axis=1) == data.labels):.4f} on these faces")
    return Teacher(probs, data.classes, faces_digest(data.images), tuple(str(r) for r in runs))


def save_teacher(teacher: Teacher, path: Path) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, probs=teacher.probs, classes=np.array(teacher.classes), digest=np.array(teacher.digest),
             runs=np.array(teacher.runs))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buffer.getvalue())


def load_teacher(path: str | Path, data: FaceSet) -> Teacher:
    """Read a teacher file and check it labels exactly ``data``'s faces, in order."""
    path = Path(path)
    if not path.is_file():
        raise TeacherError(f"{path}: no such teacher file")
    try:
        with np.load(path, allow_pickle=False) as f:
            teacher = Teacher(f["probs"].astype(np.float32), tuple(str(c) for c in f["classes"]),
                              str(f["digest"]), tuple(str(r) for r in f["runs"]))
    except Exception as exc:  # zip, missing-key and format errors all mean the same to a user
        raise TeacherError(f"{path}: not a teacher file from tools.teacher ({exc})") from None
    if teacher.classes != data.classes:
        raise TeacherError(f"{path}: teacher classes {list(teacher.classes)} differ from the data's "
                           f"{list(data.classes)}")
    if teacher.probs.shape != (len(data), len(data.classes)) or teacher.digest != faces_digest(data.images):
        raise TeacherError(f"{path}: made for other faces than these {len(data)}; run tools.teacher on this data")
    return teacher


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.teacher", description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", type=Path, required=True, help="finished run folders (best weights)")
    p.add_argument("--data", default=str(shared_split("train") or ""), help="the npz the student trains on")
    p.add_argument("--out", type=Path, required=True, help="teacher file to write (.npz)")
    args = p.parse_args(argv)
    if not args.data:
        raise SystemExit("error: no data; pass --data FILE.npz")
    try:
        teacher = make_teacher(args.runs, load_faces(args.data))
    except (DatasetError, TeacherError, FileNotFoundError) as exc:
        raise SystemExit(f"error: {exc}") from None
    save_teacher(teacher, args.out)
    print(f"wrote {args.out}: {len(teacher.probs)} faces, {len(teacher.runs)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
