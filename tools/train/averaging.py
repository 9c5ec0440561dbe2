"""Weight averaging of one architecture's trained weights, batch-norm statistics re-estimated.

Why: weights from one basin (the best of two warm-restart cycles, or a cycle's
last epochs) average into a net that generalises better than any of them, at no
cost on the device, where it is still one network (figures in the model card).
The running means and variances that each run's batch norms learnt describe
that run's own convolutions, not the averaged ones, so they are measured again
on training faces.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def average_weights(model, weight_files: Sequence[Path]) -> None:
    """Set ``model``'s weights to the mean of its own and those in ``weight_files``.

    Each file must hold weights of ``model``'s architecture; Keras raises a
    ``ValueError`` naming the mismatch otherwise.
    """
    import keras

    missing = next((f for f in weight_files if not Path(f).is_file()), None)
    if missing is not None:
        raise FileNotFoundError(f"weights file {missing} not found")
    total = [w.astype(np.float64) for w in model.get_weights()]
    other = keras.models.clone_model(model)  # one scratch copy, each file loaded into it in turn
    for weights_file in weight_files:
        other.load_weights(weights_file)
        total = [t + w for t, w in zip(total, other.get_weights(), strict=True)]
    model.set_weights([(t / (1 + len(weight_files))).astype(np.float32) for t in total])


def reestimate_batch_norm(model, x: np.ndarray, batch: int = 250) -> None:
    """Replace each batch norm's moving mean and variance by its input's exact mean and
    variance over ``x`` (N, H, W, C float32 faces as the network takes them).

    Layers are measured in order, each with the ones before it already updated,
    so every layer sees the activations the finished model will give it.
    """
    import keras

    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        upto = keras.Model(model.input, layer.input)
        total = total_sq = 0.0
        for i in range(0, len(x), batch):
            a = np.asarray(upto(x[i:i + batch], training=False), np.float64)
            a = a.reshape(-1, a.shape[-1])
            total, total_sq = total + a.sum(axis=0), total_sq + (a * a).sum(axis=0)
        count = len(x) * int(np.prod(upto.output.shape[1:-1]))
        mean = total / count
        gamma, beta, _, _ = layer.get_weights()
        layer.set_weights([gamma, beta, mean.astype(np.float32),
                           np.maximum(total_sq / count - mean * mean, 0.0).astype(np.float32)])
