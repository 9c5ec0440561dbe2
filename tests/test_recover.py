"""tools.train.recover: weights rebuilt from a float32 export compute what the file computes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")


def _trained_looking(model, rng: np.random.Generator) -> None:
    """Give every batch norm the scale, shift and statistics a trained network has, so the
    fold the export makes (and recovery has to undo) is far from the identity."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.3, 2.0, n), rng.normal(0, 0.5, n),
                               rng.normal(0, 0.3, n), rng.uniform(0.2, 3.0, n)])


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Path, Path, object]:
    """A float32 file of a flip-averaged ``vgg_elu-tiny`` with its JSON, training faces, the Keras model."""
    from models.architectures import build
    from tools.train.export import convert_float, with_flip_average

    rng = np.random.default_rng(0)
    faces = tmp_path / "faces.npz"
    np.savez(faces, images=rng.integers(0, 256, (120, 48, 48), dtype=np.uint8),
             labels=np.arange(120, dtype=np.uint8) % 7, classes=np.array(list("abcdefg")))
    model = build("vgg_elu-tiny")
    _trained_looking(model, rng)
    tflite = tmp_path / "m_float32.tflite"
    tflite.write_bytes(convert_float(with_flip_average(model)))
    stage = {"epochs_run": 8, "best_epoch": 7, "seconds": 60.0, "recipe": {"arch": "vgg_elu-tiny", "epochs": 8}}
    tflite.with_suffix(".json").write_text(json.dumps({
        "arch": "vgg_elu-tiny", "quantization": "float32", "version": "9.9.9", "flip_average": True,
        "training": {**stage, "n_train": 120, "warm_start": [{"weights": "w.h5"}],
                     "averaged_with": {"weights": ["e8.h5"], "bn_faces": 100}}}))
    return tflite, faces, model


def test_recovered_weights_reproduce_the_file_and_train_from_where_it_stands(exported, tmp_path):
    import keras

    from models.architectures import build
    from tools.data.augment import to_input
    from tools.data.dataset import load_faces
    from tools.train.recover import recover

    tflite, faces, original = exported
    weights = recover(tflite, tmp_path / "out", faces, n_faces=120, check_faces=20, log=lambda _: None)
    model = build("vgg_elu-tiny")
    model.load_weights(weights)
    x = to_input(load_faces(faces).preprocessed())
    np.testing.assert_allclose(model.predict(x, verbose=0), original.predict(x, verbose=0), atol=1e-4)
    # Each batch norm's statistics are its input's: training mode (batch statistics) starts
    # where inference stands, which the original's made-up statistics do not.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            z = np.asarray(keras.Model(model.input, layer.input)(x, training=False))
            z = z.reshape(-1, z.shape[-1])
            np.testing.assert_allclose(z.mean(axis=0), layer.moving_mean.numpy(), atol=1e-3)
            np.testing.assert_allclose(z.var(axis=0), layer.moving_variance.numpy(), atol=1e-2)


def test_a_run_warm_started_from_recovered_weights_carries_the_models_history(exported, tmp_path):
    from tools.train.recover import recover
    from tools.train.runs import TrainConfig, lineage

    tflite, faces, _ = exported
    weights = recover(tflite, tmp_path / "out", faces, n_faces=60, check_faces=5, log=lambda _: None)
    stages = lineage(TrainConfig(init_weights=str(weights)))
    assert [s["weights"] for s in stages] == ["w.h5", "m_float32.tflite 9.9.9"]
    assert stages[-1]["epochs_run"] == 8 and stages[-1]["averaged_with"]["weights"] == ["e8.h5"]


@pytest.mark.parametrize("change, message", [
    ({"quantization": "int8"}, "needs the float32 twin"),
    ({"arch": "vgg_elu-wide"}, "the architecture's (3, 3, 1, 36)"),
    ({"arch": "vgg_elu-small"}, "the file has 12 convolution/dense layers, vgg_elu has 10"),
    ({"arch": None}, "no readable model JSON"),
])
def test_a_file_that_cannot_be_recovered_is_one_line_and_writes_nothing(exported, tmp_path, capsys, change, message):
    from tools.cli import main as facecue_model

    tflite, faces, _ = exported
    meta = json.loads(tflite.with_suffix(".json").read_text())
    meta = {k: v for k, v in {**meta, **change}.items() if v is not None}
    tflite.with_suffix(".json").write_text(json.dumps(meta))
    out = tmp_path / "out"
    assert facecue_model(["recover", "--model", str(tflite), "--out", str(out), "--train", str(faces),
                          "--faces", "30"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("facecue: error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_recovery_needs_faces_to_measure_the_batch_norms_on(tmp_path, capsys):
    from tools.train.recover import main

    with pytest.raises(SystemExit) as refused:
        main(["--out", str(tmp_path / "out"), "--train", str(tmp_path / "faces.npz"), "--faces", "0"])
    assert refused.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == "facecue: error: argument --faces: must be at least 1, got 0"
    assert not (tmp_path / "out").exists()
