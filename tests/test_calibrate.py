"""Calibration: a temperature in the model's JSON changes what min_confidence means, never the answer."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from device.classify import Classifier, ModelError, apply_temperature
from models import DEFAULT_MODEL
from tools.cli import main as facecue_model
from tools.eval.calibrate import fit_temperature, main, nll
from tools.train.model_card import render_figures

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def test_temperature_keeps_the_answer_and_spreads_or_sharpens_the_rest():
    probs = softmax(np.random.default_rng(0).normal(0, 2, (50, 7)))
    for t in (0.5, 2.0):
        out = apply_temperature(probs, t)
        assert np.array_equal(out.argmax(axis=1), probs.argmax(axis=1))
        assert np.allclose(out.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(apply_temperature(probs, 2.0).max(axis=1) < probs.max(axis=1))
    assert np.all(apply_temperature(probs, 0.5).max(axis=1) > probs.max(axis=1))
    assert apply_temperature(probs, 1.0) is probs
    assert np.array_equal(apply_temperature(np.zeros((1, 7), np.float32), 2.0), np.zeros((1, 7)))  # no face


def test_the_fitted_temperature_undoes_over_confidence():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 1.5, (4000, 7))
    truth = np.array([rng.choice(7, p=p) for p in softmax(logits)])  # labels as the true logits say
    over_confident = softmax(2.0 * logits)
    t = fit_temperature(truth, over_confident)
    assert 1.85 <= t <= 2.15
    assert nll(truth, over_confident, t) < nll(truth, over_confident, 1.0)


def test_an_under_confident_model_gets_a_temperature_below_one():
    """Soft targets (vote shares, label smoothing, CutMix) leave a model too unsure: its
    temperature falls well below 1 and must not stop at the grid's end."""
    rng = np.random.default_rng(5)
    logits = rng.normal(0, 1.5, (4000, 7))
    truth = np.array([rng.choice(7, p=p) for p in softmax(logits)])
    t = fit_temperature(truth, softmax(0.3 * logits))
    assert 0.27 <= t <= 0.33


@pytest.fixture()
def model_copy(tmp_path):
    for suffix in (".tflite", ".json"):
        shutil.copy(DEFAULT_MODEL.with_suffix(suffix), tmp_path / f"m{suffix}")
    return tmp_path / "m.tflite"


def set_calibration(model, calibration) -> None:
    meta_file = model.with_suffix(".json")
    meta = json.loads(meta_file.read_text())
    meta["calibration"] = calibration
    meta_file.write_text(json.dumps(meta))


def test_the_classifier_applies_the_temperature_in_its_json(model_copy):
    faces = np.random.default_rng(2).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    raw = Classifier(model_copy, calibrated=False).probabilities(faces)
    set_calibration(model_copy, {"temperature": 2.0})
    assert np.allclose(Classifier(model_copy).probabilities(faces), apply_temperature(raw, 2.0), atol=1e-6)
    assert np.allclose(Classifier(model_copy, calibrated=False).probabilities(faces), raw)


@pytest.mark.parametrize("calibration", [{"temperature": 0.0}, {"temperature": float("nan")},
                                         {"temperature": "warm"}, {"temperature": 50}, ["t", 2]])
def test_a_broken_temperature_is_refused_at_load(model_copy, calibration):
    set_calibration(model_copy, calibration)
    with pytest.raises(ModelError, match="calibration") as err:
        Classifier(model_copy)
    assert "\n" not in str(err.value)


def test_cli_fits_writes_and_the_model_card_shows_it(model_copy, tmp_path, capsys):
    rng = np.random.default_rng(3)
    crops = tmp_path / "crops.npz"
    np.savez(crops, images=rng.integers(0, 256, (40, 48, 48), dtype=np.uint8),
             labels=(np.arange(40) % 7).astype(np.uint8), classes=np.array(CLASSES))
    assert main(["--model", str(model_copy), "--crops", str(crops), "--write"]) == 0
    out = capsys.readouterr().out
    meta = json.loads(model_copy.with_suffix(".json").read_text())
    t = meta["calibration"]["temperature"]
    assert f"fitted {t} on crops (40, FER2013 labels)" in out and f"wrote temperature {t}" in out
    assert 0.2 <= t <= 4.0 and len(meta["calibration"]["table"]) == 7
    card = render_figures(meta, None)
    assert f"softmax temperature {t} fitted there" in card and "| of them right |" in card
    assert facecue_model(["calibrate", "--model", str(tmp_path / "none.tflite"), "--crops", str(crops)]) == 1
    assert capsys.readouterr().err.startswith("facecue: error: model file")


VOTE_NAMES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")


def write_votes(path, n: int) -> np.ndarray:
    """Votes for ``n`` rows: every third row mostly 'unknown', the rest mostly happy.
    Returns which rows are usable."""
    votes = np.zeros((n, 10), np.float32)
    votes[:, VOTE_NAMES.index("happiness")] = 8
    votes[:, VOTE_NAMES.index("neutral")] = 2
    votes[::3] = 0
    votes[::3, VOTE_NAMES.index("unknown")] = 10
    np.savez(path, votes=votes, vote_names=np.array(VOTE_NAMES))
    return np.arange(n) % 3 != 0


def test_votes_relabel_crops_and_scenes_by_their_source_face(tmp_path):
    from tools.data.dataset import load_faces, load_photos
    from tools.eval.calibrate import relabel_by_votes

    rng = np.random.default_rng(4)
    crops = tmp_path / "crops.npz"
    np.savez(crops, images=rng.integers(0, 256, (9, 48, 48), dtype=np.uint8),
             labels=np.zeros(9, np.uint8), classes=np.array(CLASSES))
    usable = write_votes(tmp_path / "votes.npz", 9)
    scenes = tmp_path / "scenes.npz"
    source = np.array([0, 1, 2, 4, 4, 8])
    np.savez(scenes, images=rng.integers(0, 256, (6, 64, 80), dtype=np.uint8), labels=np.zeros(6, np.uint8),
             classes=np.array(CLASSES), source=source)
    photos, faces = relabel_by_votes(tmp_path / "votes.npz", scenes, load_photos(scenes), load_faces(crops))
    assert len(faces) == usable.sum() and set(faces.labels) == {CLASSES.index("happy")}
    assert len(photos) == usable[source].sum() == 5 and set(photos.labels) == {CLASSES.index("happy")}
    np.savez(scenes, images=rng.integers(0, 256, (2, 64, 80), dtype=np.uint8), labels=np.zeros(2, np.uint8),
             classes=np.array(CLASSES))
    with pytest.raises(Exception, match="records no source faces"):
        relabel_by_votes(tmp_path / "votes.npz", scenes, load_photos(scenes), None)


def test_cli_with_votes_fits_on_the_raters_majority(model_copy, tmp_path, capsys):
    rng = np.random.default_rng(3)
    crops = tmp_path / "crops.npz"
    np.savez(crops, images=rng.integers(0, 256, (30, 48, 48), dtype=np.uint8),
             labels=(np.arange(30) % 7).astype(np.uint8), classes=np.array(CLASSES))
    write_votes(tmp_path / "votes.npz", 30)
    assert main(["--model", str(model_copy), "--crops", str(crops), "--votes", str(tmp_path / "votes.npz")]) == 0
    assert "on crops (20, FER+ majority)" in capsys.readouterr().out
    assert facecue_model(["calibrate", "--model", str(model_copy), "--crops", str(crops),
                          "--votes", str(tmp_path / "no.npz")]) == 1
    assert "no such votes file" in capsys.readouterr().err
