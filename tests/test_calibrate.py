"""Calibration: a temperature in the model's JSON changes what min_confidence means, never the answer."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from device.classify import Classifier, ModelError, apply_temperature
from models import DEFAULT_MODEL
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
    assert f"fitted {t} on crops (40)" in out and f"wrote temperature {t}" in out
    assert 0.5 <= t <= 4.0 and len(meta["calibration"]["table"]) == 7
    card = render_figures(meta, None)
    assert f"softmax temperature {t} fitted there" in card and "| of them right |" in card
    assert main(["--model", str(tmp_path / "none.tflite"), "--crops", str(crops)]) == 2
    assert capsys.readouterr().err.startswith("facecue: error: model file")
