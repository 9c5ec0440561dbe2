"""FER+ crowd votes (Barsoum et al. 2016, MIT) for the rows of a FER2013 npz.

Ten raters voted on every FER2013 face over ten columns: our seven expressions
plus contempt, unknown and not-a-face. One reading of the votes for training
and for scoring, so a training target and a scored label never disagree:

- A face whose most-voted column is contempt, unknown or not-a-face is left out
  (as the FER+ paper leaves out unknown and not-a-face): the device has no word
  for it, and its seven-class remainder is a handful of stray votes.
- Otherwise its target is its votes over our seven, as shares (the paper's best
  scheme), and its majority label is the most-voted of the seven (the first
  of a tie, in our class order).
- A row FER+ could not match (``-1`` votes) has no FER+ label; training falls
  back to its FER2013 label, scoring leaves it out.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools.data.dataset import DatasetError, FaceSet, check_npz_file

SHARED_VOTES = Path(__file__).resolve().parents[3] / "shared" / "data" / "ferplus"
# FER+'s column name for each of our classes, where the two spellings differ.
VOTE_NAME = {"angry": "anger", "happy": "happiness", "sad": "sadness"}


@dataclass(frozen=True)
class Votes:
    """The FER+ reading of one npz's rows, in that npz's order."""

    shares: np.ndarray  # (N, C) float32 vote shares over our classes; zero rows where not usable
    usable: np.ndarray  # (N,) bool: matched, and most votes on one of our classes
    matched: np.ndarray  # (N,) bool: FER+ has votes for the row at all

    @property
    def majority(self) -> np.ndarray:
        """(N,) int: the most-voted of our classes, ``-1`` where not usable."""
        return np.where(self.usable, self.shares.argmax(1), -1)

    def targets(self, labels: np.ndarray, original_share: float) -> tuple[np.ndarray, np.ndarray]:
        """Training targets (N, C) and which rows to train on.

        ``original_share`` of each usable row's target is its FER2013 label,
        the rest its vote shares; unmatched rows get their FER2013 label alone.
        Why mix in the original label: FER+ raters call many weak angry, fear and
        sad faces neutral, and a target made of votes alone lets those classes fade.
        """
        onehot = np.eye(self.shares.shape[1], dtype=np.float32)[labels]
        mixed = (1.0 - original_share) * self.shares + original_share * onehot
        targets = np.where(self.usable[:, None], mixed, onehot).astype(np.float32)
        return targets, self.usable | ~self.matched


def votes_path_for(faces: str | Path) -> Path:
    """Where the votes of a FER2013 split are: beside it in ``$FACECUE_VOTES`` when set,
    else ``../shared/data/ferplus/<same name>``."""
    folder = Path(os.environ["FACECUE_VOTES"]) if os.environ.get("FACECUE_VOTES") else SHARED_VOTES
    return folder / Path(faces).name


def load_votes(path: str | Path, classes: tuple[str, ...], n: int | None = None) -> Votes:
    """Read a FER+ votes npz (``votes`` (N, 10), ``vote_names``) over ``classes``, for an npz
    of ``n`` rows where given (any number otherwise); refused in one line unless it fits."""
    path = Path(path)
    check_npz_file(path, "votes")
    try:
        with np.load(path, allow_pickle=False) as data:
            votes, names = data["votes"], [str(v) for v in data["vote_names"]]
    except KeyError as exc:
        raise DatasetError(f"{path}: not a FER+ votes file (no {exc} array)") from None
    except ValueError as exc:
        raise DatasetError(f"{path}: not a readable npz file ({exc})") from None
    if votes.ndim != 2 or votes.shape[1] != len(names) or (n is not None and len(votes) != n):
        raise DatasetError(f"{path}: votes of shape {votes.shape} for {'any number of' if n is None else n} faces "
                           f"and {len(names)} vote names")
    wanted = [VOTE_NAME.get(c, c) for c in classes]
    missing = [w for w in wanted if w not in names]
    if missing:
        raise DatasetError(f"{path}: no votes for {', '.join(missing)}")
    votes = votes.astype(np.float32)
    matched = votes.min(1) >= 0
    ours = votes[:, [names.index(w) for w in wanted]]
    usable = matched & (ours.max(1) >= votes.max(1)) & (ours.sum(1) > 0)
    shares = np.where(usable[:, None], ours / np.maximum(ours.sum(1, keepdims=True), 1e-6), 0.0)
    return Votes(shares.astype(np.float32), usable, matched)


def majority_faces(faces: FaceSet, votes_file: str | Path) -> FaceSet:
    """``faces`` (the rows of the split the votes belong to) labelled by their raters'
    majority, without the faces that have none: what every FER+ figure is scored on."""
    votes = load_votes(votes_file, faces.classes, len(faces))
    return FaceSet(faces.images[votes.usable], votes.majority[votes.usable], faces.classes)
