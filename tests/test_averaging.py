"""Weight averaging (``tools.train.averaging``): the mean of the weights, and batch-norm
statistics that match what the averaged network actually feeds each layer."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras  # noqa: E402

from models.architectures import build  # noqa: E402
from tools.train.averaging import average_weights, reestimate_batch_norm  # noqa: E402


def tiny_net(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return build("vgg_elu-tiny")


def test_average_is_the_mean_of_the_model_and_the_files(tmp_path):
    a, b, c = tiny_net(1), tiny_net(2), tiny_net(3)
    for net, name in ((b, "b"), (c, "c")):
        net.save_weights(tmp_path / f"{name}.weights.h5")
    weights = zip(a.get_weights(), b.get_weights(), c.get_weights(), strict=True)
    expected = [(wa + wb + wc) / 3 for wa, wb, wc in weights]
    average_weights(a, [tmp_path / "b.weights.h5", tmp_path / "c.weights.h5"])
    assert all(np.allclose(got, want, atol=1e-6) for got, want in zip(a.get_weights(), expected, strict=True))


@pytest.mark.filterwarnings("ignore:Skipping nested container")  # Keras says so before it refuses the file
def test_weights_of_another_architecture_or_a_missing_file_are_refused(tmp_path):
    other = build("vgg_elu-small")
    other.save_weights(tmp_path / "small.weights.h5")
    net = tiny_net(1)
    before = net.get_weights()
    with pytest.raises(ValueError):
        average_weights(net, [tmp_path / "small.weights.h5"])
    with pytest.raises(FileNotFoundError, match="missing.weights.h5 not found"):
        average_weights(net, [tmp_path / "missing.weights.h5"])
    assert all(np.array_equal(x, y) for x, y in zip(net.get_weights(), before, strict=True))


def test_reestimated_statistics_are_the_exact_moments_of_each_layers_input():
    net = tiny_net(4)
    x = np.random.default_rng(0).random((70, 48, 48, 1), np.float32)
    reestimate_batch_norm(net, x, batch=32)  # 70 faces in uneven batches of 32
    for name in ("block1_1_bn", "block3_2_bn", "fc_bn"):
        layer = net.get_layer(name)
        a = keras.Model(net.input, layer.input).predict(x, verbose=0)
        a = a.reshape(-1, a.shape[-1]).astype(np.float64)
        _, _, mean, var = layer.get_weights()
        assert np.allclose(mean, a.mean(axis=0), rtol=1e-4, atol=1e-5)
        assert np.allclose(var, a.var(axis=0), rtol=1e-3, atol=1e-5)
