"""Quantization-aware fine-tuning: the simulation computes what the int8 file computes,
and training through it trains the ordinary model (with its batch norms frozen).

Runs on generated faces with ``vgg_elu-tiny``; needs TensorFlow, skips cleanly without it.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from test_training import write_patterned_faces  # noqa: E402

from device.classify import load_interpreter_class  # noqa: E402
from models.architectures import build  # noqa: E402
from tools.augment import to_input  # noqa: E402
from tools.dataset import load_faces  # noqa: E402
from tools.export import convert_int8  # noqa: E402
from tools.quant_aware import int8_simulated  # noqa: E402
from tools.train import TrainConfig, main, parse_args, prepare_run, run_training  # noqa: E402


def tiny_model_with_varied_batch_norms(seed: int):
    """An untrained tiny net whose batch norms fold into kernels of unequal scales, as a
    trained net's do (fresh ones fold to nearly the identity and hide folding mistakes).
    The kernels are drawn from ``seed`` too, so a test sees the same net every run."""
    import keras

    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)
    model = build("vgg_elu-tiny")
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2.0, n), rng.normal(0, 0.3, n), rng.normal(0, 0.2, n),
                               rng.uniform(0.3, 3.0, n)])
    return model


def stored_tensors_of_the_file(blob: bytes, face: np.ndarray, count: int) -> list[np.ndarray]:
    """The first ``count`` activations the int8 file stores in int8 (each convolution's output,
    each ELU's re-quantized output), dequantized, for one face."""
    interpreter = load_interpreter_class()(model_content=blob, num_threads=1, experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    scale, zero = inp["quantization"]
    interpreter.set_tensor(inp["index"], np.clip(np.round(face / scale) + zero, -128, 127).astype(np.int8))
    interpreter.invoke()
    stored = [t for t in interpreter.get_tensor_details()
              if t["dtype"] == np.int8 and len(t["shape"]) == 4 and t["shape"][0] == 1 and t["shape"][-1] > 1
              and "MaxPool" not in t["name"]]
    return [(interpreter.get_tensor(t["index"]).astype(np.float32) - t["quantization"][1]) * t["quantization"][0]
            for t in stored[:count]]


def test_simulation_rounds_as_the_int8_file_does(tmp_path):
    """Layer by layer, the simulation lands on the file's own int8 levels where the float
    model is off by a fraction of a level: folding, kernel rounding and calibrated ranges
    (measured on the float network, as the converter measures them) all agree with the
    converter's. (Deeper in, the two drift apart as any two rounding paths do, one level
    flipped here and there, so the check is on the first four.)"""
    import keras

    model = tiny_model_with_varied_batch_norms(seed=5)
    faces = to_input(load_faces(write_patterned_faces(tmp_path / "f.npz", 97, 6)).preprocessed())
    calibration, face = faces[:96], faces[96:]
    from_file = stored_tensors_of_the_file(convert_int8(model, calibration), face, 4)
    simulated = int8_simulated(model, calibration)
    rounded = [layer.output for layer in simulated.layers if type(layer).__name__ == "RoundToInt8"][:4]
    from_simulation = keras.Model(simulated.input, rounded)(face, training=False)
    floats = keras.Model(model.input, [model.get_layer(name).output for name in
                                       ("block1_1_bn", "block1_1_elu", "block1_2_bn", "block1_2_elu")])(face)
    for exact, sim, flt in zip(from_file, from_simulation, floats, strict=True):
        assert np.abs(exact - np.asarray(sim)).mean() < 0.05 * np.abs(exact - np.asarray(flt)).mean()


def test_simulation_shares_the_models_variables_and_refuses_what_it_cannot_fold(tmp_path):
    model = tiny_model_with_varied_batch_norms(seed=7)
    faces = to_input(load_faces(write_patterned_faces(tmp_path / "f.npz", 32, 8)).preprocessed())
    simulated = int8_simulated(model, faces)
    assert {id(v) for v in simulated.trainable_variables} == {id(v) for v in model.trainable_variables}
    with pytest.raises(ValueError, match="does not handle layer block1_conv1"):
        int8_simulated(build("vgg16"), faces[:4])


def test_quant_aware_run_trains_the_model_through_the_rounding_with_batch_norms_frozen(tmp_path):
    start = tiny_model_with_varied_batch_norms(seed=9)
    start.save_weights(tmp_path / "start.weights.h5")
    cfg = TrainConfig(arch="vgg_elu-tiny", train=str(write_patterned_faces(tmp_path / "train.npz", 96, 10)),
                      valid=str(write_patterned_faces(tmp_path / "valid.npz", 35, 11)), epochs=1, batch=32,
                      lr=0.01, warmup_epochs=0.0, seed=12, init_weights=str(tmp_path / "start.weights.h5"),
                      quant_aware=True)
    trainer = run_training(prepare_run(tmp_path / "run", cfg, resume=False), tmp_path / "run", log=lambda _: None)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["quant_aware"] is True
    assert 0.0 <= trainer.state["history"][0]["val_acc"] <= 1.0
    for before, after in zip(start.layers, trainer.model.layers, strict=True):
        if type(before).__name__ == "BatchNormalization":
            gamma, beta, mean, var = (w.numpy() for w in before.weights)
            new_gamma, _, new_mean, new_var = (w.numpy() for w in after.weights)
            assert np.array_equal(mean, new_mean) and np.array_equal(var, new_var)  # folded constants
            assert not np.array_equal(gamma, new_gamma)  # but the scale trains
        elif type(before).__name__ == "Conv2D":
            assert not np.array_equal(before.kernel.numpy(), after.kernel.numpy())


def test_quant_aware_needs_a_trained_vgg_elu_to_start_from(tmp_path):
    train = str(write_patterned_faces(tmp_path / "t.npz", 14, 1))
    with pytest.raises(SystemExit, match="--quant-aware fine-tunes a trained vgg_elu model: pass --init-weights"):
        main(["--run", str(tmp_path / "run"), "--train", train, "--quant-aware"])
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv,expected", [([], False), (["--quant-aware"], True), (["--quant-aware", "False"], False),
                                           (["--quant-aware", "true"], True)])
def test_quant_aware_flag_alone_or_with_the_value_sagemaker_passes(argv, expected):
    assert parse_args(["--train", "t.npz", *argv]).quant_aware is expected


def test_a_bad_quant_aware_value_is_refused(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--train", "t.npz", "--quant-aware", "maybe"])
    assert "argument --quant-aware: 'maybe': yes or no" in capsys.readouterr().err
