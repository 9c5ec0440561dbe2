"""CutMix in the training batches: the pasted area and the mixed targets agree (one-hot
labels or a teacher's soft rows), and a share of 0 leaves batches (and the random
stream) exactly as without it."""
from __future__ import annotations

import numpy as np

from tools.data.augment import cutmix

N_CLASSES = 7


def flat_faces(n: int, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Face ``i`` is uniformly ``(i + 1) / 100`` with label ``i % 7``: every pixel says whose it is."""
    values = (np.arange(n, dtype=np.float32) + 1) / 100
    return np.broadcast_to(values[:, None, None, None], (n, size, size, 1)).copy(), np.arange(n) % N_CLASSES


def one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(N_CLASSES, dtype=np.float32)[labels]


def test_zero_share_is_one_hot_and_draws_nothing():
    faces, labels = flat_faces(10)
    rng = np.random.default_rng(5)
    mixed, targets = cutmix(faces, one_hot(labels), rng, 0.0)
    assert mixed is faces
    assert np.array_equal(targets, one_hot(labels))
    assert rng.random() == np.random.default_rng(5).random()


def test_label_shares_follow_the_pasted_area():
    faces, labels = flat_faces(64)
    mixed, targets = cutmix(faces, one_hot(labels), np.random.default_rng(1), 1.0)
    assert targets.dtype == np.float32 and np.allclose(targets.sum(axis=1), 1.0)
    changed = 0
    for i in range(len(faces)):
        own = faces[i, 0, 0, 0]
        donor_values = np.unique(mixed[i][mixed[i] != own])
        assert len(donor_values) <= 1  # at most one donor per face
        pasted = float(np.mean(mixed[i] != own))
        expected = np.eye(N_CLASSES)[labels[i]] * (1.0 - pasted)
        if len(donor_values):
            changed += 1
            expected[labels[int(round(donor_values[0] * 100)) - 1]] += pasted
        else:
            expected[labels[i]] = 1.0
        assert np.allclose(targets[i], expected, atol=1e-6)
    assert changed > 40  # a box of a random size from another face on almost every face
    assert not np.array_equal(mixed, faces) and np.array_equal(faces, flat_faces(64)[0])  # input untouched


def test_share_sets_how_many_faces_are_mixed():
    faces, labels = flat_faces(2000, size=8)
    mixed, _ = cutmix(faces, one_hot(labels), np.random.default_rng(2), 0.3)
    touched = np.mean([np.any(mixed[i] != faces[i]) for i in range(len(faces))])
    assert 0.24 < touched < 0.32  # 30 % chosen, less the few given their own face or an empty box


def test_soft_target_rows_are_mixed_by_area_like_labels():
    faces, labels = flat_faces(64)
    soft = np.random.default_rng(3).dirichlet(np.ones(N_CLASSES), len(faces)).astype(np.float32)
    mixed, targets = cutmix(faces, soft, np.random.default_rng(1), 1.0)
    for i in range(len(faces)):
        own = faces[i, 0, 0, 0]
        pasted = float(np.mean(mixed[i] != own))
        donor = int(round(mixed[i][mixed[i] != own][0] * 100)) - 1 if pasted else i
        assert np.allclose(targets[i], (1.0 - pasted) * soft[i] + pasted * soft[donor], atol=1e-6)
    assert np.allclose(targets.sum(axis=1), 1.0, atol=1e-5)

