"""FER+ votes: one reading for training targets and for scored labels (tools.data.ferplus)."""
from __future__ import annotations

import numpy as np
import pytest

from tools.data.dataset import DatasetError
from tools.data.ferplus import load_votes

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
VOTE_NAMES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
              "unknown", "NF")


def write_votes(path, rows) -> None:
    np.savez(path, votes=np.array(rows, np.float32), vote_names=np.array(VOTE_NAMES),
             corr=np.ones(len(rows), np.float32), names=np.array([f"r{i}" for i in range(len(rows))]))


def test_votes_become_shares_over_our_classes_in_our_order(tmp_path):
    write_votes(tmp_path / "v.npz", [
        [6, 0, 0, 2, 0, 0, 0, 1, 1, 0],  # neutral 6, sadness 2: contempt and unknown votes dropped
        [0, 0, 3, 0, 0, 0, 5, 0, 2, 0],  # fear 5, surprise 3
        [1, 0, 0, 0, 0, 0, 0, 0, 7, 2],  # mostly unknown: not usable
        [-1] * 10,  # FER+ found no match for this row
        [0, 0, 0, 0, 2, 2, 0, 6, 0, 0],  # mostly contempt: no word for it on the device
    ])
    votes = load_votes(tmp_path / "v.npz", CLASSES, 5)
    assert votes.usable.tolist() == [True, True, False, False, False]
    assert votes.matched.tolist() == [True, True, True, False, True]
    assert np.allclose(votes.shares[0], [0, 0, 0, 0, 0.75, 0.25, 0])
    assert np.allclose(votes.shares[1], [0, 0, 0.625, 0, 0, 0, 0.375])
    assert votes.majority.tolist() == [4, 2, -1, -1, -1]


def test_targets_mix_in_the_original_label_and_fall_back_to_it_where_unmatched(tmp_path):
    write_votes(tmp_path / "v.npz", [[10, 0, 0, 0, 0, 0, 0, 0, 0, 0], [-1] * 10, [0] * 8 + [10, 0]])
    votes = load_votes(tmp_path / "v.npz", CLASSES, 3)
    targets, keep = votes.targets(np.array([0, 5, 3]), original_share=0.25)
    assert np.allclose(targets[0], [0.25, 0, 0, 0, 0.75, 0, 0])  # angry in FER2013, neutral by the raters
    assert np.allclose(targets[1], np.eye(7)[5])  # unmatched: its FER2013 label alone
    assert keep.tolist() == [True, True, False]  # a face the raters could not read is left out
    assert np.allclose(targets[keep].sum(1), 1.0)


@pytest.mark.parametrize("make,message", [
    (lambda p: p.write_bytes(b"not a zip"), "not a readable npz"),
    (lambda p: np.savez(p, votes=np.zeros((2, 10)), vote_names=np.array(VOTE_NAMES)),
     r"votes of shape \(2, 10\) for 3"),
    (lambda p: np.savez(p, votes=np.zeros((3, 2)), vote_names=np.array(["a", "b"])), "no votes for anger"),
    (lambda p: np.savez(p, images=np.zeros(3)), "not a FER\\+ votes file"),
])
def test_a_file_that_does_not_fit_is_refused_in_one_line(tmp_path, make, message):
    path = tmp_path / "v.npz"
    make(path)
    with pytest.raises(DatasetError, match=message) as caught:
        load_votes(path, CLASSES, 3)
    assert "\n" not in str(caught.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(DatasetError, match="no such votes file"):
        load_votes(tmp_path / "nope.npz", CLASSES, 3)
