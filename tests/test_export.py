"""The shipped model's metadata tells the truth, and a failed export changes nothing.

The shipped-model tests need only the device runtime (and the shared valid
set for the accuracy check); the export error tests need TensorFlow.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from device.classify import REQUIRED_KEYS, Classifier, sha256_file
from device.preprocess import FACE_SIZE, PIXEL_SCALE, crop_metadata
from tools.cli import main as facecue_model
from tools.eval.evaluate import evaluate_model

LABELS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
METADATA_KEYS = {"name", "version", "file", "sha256", "size", "labels", "input", "output", "preprocessing",
                 "accuracy", "macs", "params", "arch", "training", "created"}


@pytest.fixture(scope="module")
def shipped_meta(model_path: Path) -> dict:
    return json.loads(model_path.with_suffix(".json").read_text())


def test_shipped_metadata_describes_the_file(model_path, shipped_meta):
    assert METADATA_KEYS | set(REQUIRED_KEYS) <= set(shipped_meta)
    assert shipped_meta["file"] == model_path.name == "facecue_vgg_elu_int8.tflite"
    assert shipped_meta["sha256"] == sha256_file(model_path)
    assert shipped_meta["size"] == model_path.stat().st_size <= 3_000_000
    assert shipped_meta["labels"] == LABELS
    assert shipped_meta["preprocessing"] == crop_metadata()
    assert crop_metadata()["size"] == FACE_SIZE and crop_metadata()["pixel_scale"] == PIXEL_SCALE


def test_shipped_tensor_specs_match_the_interpreter(model_path, shipped_meta):
    classifier = Classifier(model_path)
    for key, detail in (("input", classifier.interpreter.get_input_details()[0]),
                        ("output", classifier.interpreter.get_output_details()[0])):
        spec = shipped_meta[key]
        assert spec["dtype"] == "int8" == np.dtype(detail["dtype"]).name
        assert spec["shape"] == list(detail["shape"])
        assert (spec["scale"], spec["zero_point"]) == pytest.approx(detail["quantization"])


def test_shipped_accuracy_is_what_eval_measures(model_path, shipped_meta, valid_faces):
    """The JSON's int8 figures are reproduced by the device path on the shared valid set."""
    scores = evaluate_model(model_path, valid_faces, threads=2)
    accuracy = shipped_meta["accuracy"]
    assert accuracy["n_valid"] == scores.n == len(valid_faces)
    assert accuracy["valid_int8"] == pytest.approx(scores.accuracy, abs=1e-9)
    assert accuracy["macro_f1_int8"] == pytest.approx(scores.macro_f1, abs=1e-9)
    assert list(accuracy["per_class_recall_int8"].values()) == pytest.approx(list(scores.recall))


@pytest.fixture
def random_run(tmp_path: Path) -> Path:
    """A run folder holding an untrained ``vgg_elu-tiny``: enough for export to start."""
    pytest.importorskip("tensorflow")
    from models.architectures import build

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "faces.npz", images=rng.integers(0, 256, (20, 48, 48), dtype=np.uint8),
             labels=np.arange(20, dtype=np.uint8) % 7, classes=np.array(LABELS))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"arch": "vgg_elu-tiny", "train": str(tmp_path / "faces.npz"),
                                                 "valid": str(tmp_path / "faces.npz")}))
    build("vgg_elu-tiny").save_weights(run / "best.weights.h5")
    return run


def test_failed_export_leaves_the_models_folder_alone(random_run, tmp_path, capsys):

    out = tmp_path / "models"
    out.mkdir()
    (out / "facecue_vgg_elu_int8.tflite").write_bytes(b"old model")
    (tmp_path / "broken.npz").write_bytes(b"not an npz")
    assert facecue_model(["export", "--run", str(random_run), "--out", str(out),
                          "--valid", str(tmp_path / "broken.npz")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("facecue: error: ") and "broken.npz" in err and err.count("\n") == 1
    assert [p.name for p in out.iterdir()] == ["facecue_vgg_elu_int8.tflite"]
    assert (out / "facecue_vgg_elu_int8.tflite").read_bytes() == b"old model"


def test_export_of_a_missing_run_is_one_line(tmp_path, capsys):
    pytest.importorskip("tensorflow")

    assert facecue_model(["export", "--run", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err == f"facecue: error: {tmp_path / 'nowhere'} is not a run folder (no config.json)\n"
    assert not (tmp_path / "out").exists()


def test_model_card_figures_come_from_the_json(model_path, shipped_meta, tmp_path):
    from tools.train.model_card import END, START, update_card

    card = tmp_path / "README.md"
    card.write_text(f"# card\n\nprose\n\n{START}\nstale figures\n{END}\n\n## after\n")
    update_card(card, model_path)
    text = card.read_text()
    assert "stale figures" not in text and text.startswith("# card\n\nprose\n") and text.endswith("## after\n")
    assert f"**{shipped_meta['accuracy']['valid_int8']:.4f}**" in text and shipped_meta["version"] in text
    update_card(card, model_path)
    assert card.read_text() == text
    from tools.train.model_card import render_figures

    foreign = dict(shipped_meta, training=dict(shipped_meta["training"], warm_start=[{"weights": "w.h5"}]))
    assert "| 1 | weights `w.h5` of unrecorded training | | | | | |\n| 2 | " in render_figures(foreign, None)
    card.write_text("# a card without markers\n")
    with pytest.raises(ValueError, match="figures section"):
        update_card(card, model_path)


def test_model_card_says_when_weights_were_averaged_and_faces_mirrored(shipped_meta):
    from tools.train.model_card import render_figures

    def unaveraged(stage):
        return {k: v for k, v in stage.items() if k != "averaged_with"}

    training = dict(unaveraged(shipped_meta["training"]),
                    warm_start=[unaveraged(s) for s in shipped_meta["training"]["warm_start"]])
    plain = render_figures(dict(shipped_meta, flip_average=False, training=training), None)
    assert "mirror image" not in plain and "batch norms" not in plain and "Keras float (best epoch)" in plain
    averaged = dict(training, weights="best", averaged_with={"weights": ["runs/a/best.weights.h5"], "bn_faces": 8000})
    text = render_figures(dict(shipped_meta, flip_average=True, training=averaged), None)
    assert "| inference | each face and its mirror image in one batch, probabilities averaged |" in text
    assert "Keras float (averaged weights)" in text
    assert "| its best weights and `runs/a/best.weights.h5`; batch norms re-estimated on 8,000 faces |" in text
    from_file = dict(averaged, weights="runs/a/epochs/epoch004.weights.h5")
    assert "| `runs/a/epochs/epoch004.weights.h5` and `runs/a/best.weights.h5`; batch norms" in \
        render_figures(dict(shipped_meta, training=from_file), None)
    assert "| `runs/a/epochs/epoch004.weights.h5` and `runs/a/best.weights.h5`; batch norms" in \
        render_figures(dict(shipped_meta, training=dict(from_file, warm_start=[])), None)  # no warm start
    middle = dict(averaged, warm_start=[dict(shipped_meta["training"]["warm_start"][-1],
                                             averaged_with={"weights": ["e9.h5"], "bn_faces": 100})])
    text = render_figures(dict(shipped_meta, training=middle), None)
    rows = [line for line in text.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert rows[0].endswith("| its best weights and `e9.h5`; batch norms re-estimated on 100 faces |")
    assert rows[1].endswith("| its best weights and `runs/a/best.weights.h5`; batch norms re-estimated on "
                            "8,000 faces |")


def test_model_card_names_the_labels_the_adjustment_and_the_fer_plus_figures(shipped_meta):
    from tools.train.model_card import render_figures

    recipe = dict(shipped_meta["training"]["recipe"], votes="ferplus/train.npz", original_share=0.25)
    training = dict(shipped_meta["training"], recipe=recipe,
                    logit_adjustment={"tau": 0.5, "prior": {c: 1 / 7 for c in shipped_meta["labels"]}})
    accuracy = dict(shipped_meta["accuracy"], ferplus_majority_int8=0.8312, ferplus_n=3485,
                    ferplus_votes="valid.npz sha256 abc",
                    ferplus_per_class_recall_int8={c: 0.5 for c in shipped_meta["labels"]})
    text = render_figures(dict(shipped_meta, training=training, accuracy=accuracy), None)
    assert "FER+ majority vote of the 3,485 validation faces that have one (`valid.npz`): int8 **0.8312**" in text
    assert "Logit adjustment: the classifier's biases lowered by 0.5 x log" in text and "angry 0.143" in text
    assert "| FER+ votes, 0.25 FER2013 label, 0.6 re-framed |" in text
    assert "The last run's recipe: FER+ vote shares mixed with 0.25 of the FER2013 label; SGD" in text


def test_model_card_counts_several_averaged_weights():
    from tools.train.model_card import describe_averaging

    averaged = {"weights": ["e32.h5", "e33.h5", "e34.h5"], "bn_faces": 500}
    assert describe_averaging(averaged) == ("its best weights and 3 more weights files; "
                                            "batch norms re-estimated on 500 faces")
    assert describe_averaging(dict(averaged, bn_faces=0)).endswith("batch norms averaged as they were")
    assert describe_averaging(None) == ""


@pytest.mark.parametrize("drop, words", [(0.11, "drop 0.11 pt"), (0.0, "drop 0.00 pt"), (-0.2, "0.20 pt above float")])
def test_int8_against_float_in_words(drop, words):
    from tools.eval.metrics import describe_int8_drop

    assert describe_int8_drop(drop) == words


def test_the_committed_fixture_model_is_what_export_makes(tmp_path):
    """The sync tests use ``tests/fixtures/fixture_int8.tflite`` so that they need no
    TensorFlow; it must stay what the exporter makes, in every field a device reads.
    Set FACECUE_WRITE_FIXTURE=1 to write the fresh export over it."""
    pytest.importorskip("tensorflow")
    from s3_server import FIXTURE_MODEL, export_fixture_model

    made = export_fixture_model(tmp_path)
    if os.environ.get("FACECUE_WRITE_FIXTURE") == "1":
        for key in ("int8", "int8_json"):
            shutil.copyfile(made[key], FIXTURE_MODEL.parent / made[key].name)
    fresh = json.loads(made["int8_json"].read_text())
    committed = json.loads(FIXTURE_MODEL.with_suffix(".json").read_text())
    assert sorted(committed) == sorted(fresh)
    read_by_device = ("name", "quantization", "version", "file", "labels", "input", "output", "preprocessing",
                      "flip_average", "arch", "macs", "params")
    stale = [k for k in read_by_device if committed[k] != fresh[k]]
    assert not stale, f"{stale} changed: rerun this test with FACECUE_WRITE_FIXTURE=1 and commit tests/fixtures/"
    assert committed["sha256"] == sha256_file(FIXTURE_MODEL) and committed["size"] == FIXTURE_MODEL.stat().st_size
    assert Classifier(FIXTURE_MODEL).labels == tuple(committed["labels"])
