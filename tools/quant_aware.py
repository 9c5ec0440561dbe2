"""Quantization-aware fine-tuning: train through the int8 rounding the export applies.

Post-training int8 conversion cost the shipped models 0.1-0.4 point of valid
accuracy (measured: 1.5.0 lost 0.08, cycle 6 0.36, the 5+6 weight soup 0.25),
and no choice of calibration faces ordered the candidates (model card). The
rounding is what the network never saw while it learned, so a few epochs at
a low learning rate through a simulation of it let the weights settle where
the rounding hurts least.

The simulated network is rebuilt from the trained Keras model's own layers,
matching what ``tools.export``'s converter writes (checked against the file
in ``tests/test_quant_aware.py``):

- each convolution or dense layer with the batch norm after it is folded
  into one kernel and bias, and the kernel rounded per output channel to
  int8 (symmetric, scale max|w|/127), as the converter folds and quantizes;
- every tensor the int8 file stores in int8 -- each convolution's output,
  each ELU's output (the ELUs run in float between QUANTIZE/DEQUANTIZE), the
  pooled features, the logits -- is rounded to 256 levels over the range it
  takes on calibration faces, the converter's min/max calibration;
- gradients pass the rounding straight through (TensorFlow's fake-quant ops).

The layers' variables are shared with the model, so training updates the
ordinary architecture, which saves and exports unchanged. Batch-norm
statistics stay frozen: in the file they are folded constants.
"""
from __future__ import annotations

import functools

import numpy as np

# Training faces the activation ranges are calibrated on, as many as tools.export calibrates on.
CALIBRATION_FACES = 3000
# A range with no width cannot be quantized; a constant-zero channel gets this one.
_MIN_RANGE = 1e-8


def _folded(linear, bn):
    """Kernel and bias of ``linear`` (Conv2D or Dense) with batch norm ``bn`` (or none)
    folded in, as the converter folds them."""
    import tensorflow as tf

    if bn is None:
        bias = linear.bias if linear.use_bias else tf.zeros(linear.kernel.shape[-1])
        return linear.kernel, bias
    scale = bn.gamma * tf.math.rsqrt(bn.moving_variance + bn.epsilon)
    bias = bn.beta - bn.moving_mean * scale
    if linear.use_bias:
        bias += linear.bias * scale
    return linear.kernel * scale, bias


def quantize_kernel(kernel):
    """Per-output-channel symmetric int8 rounding (levels -127..127), gradient straight through."""
    import tensorflow as tf

    axes = list(range(len(kernel.shape) - 1))
    bound = tf.stop_gradient(tf.maximum(tf.reduce_max(tf.abs(kernel), axis=axes), _MIN_RANGE))
    return tf.quantization.fake_quant_with_min_max_vars_per_channel(kernel, -bound, bound, num_bits=8,
                                                                    narrow_range=True)


@functools.cache
def _layers():
    """The Keras layer classes, defined once on first use so importing this module needs no TensorFlow."""
    import keras
    import tensorflow as tf

    class FoldedLinear(keras.layers.Layer):
        """A Conv2D or Dense layer and the batch norm after it (or none) as one kernel, int8-rounded
        unless ``rounded`` is False, and a bias; the two layers' variables are used, not copied."""

        def __init__(self, linear, bn=None, rounded: bool = True, **kwargs) -> None:
            super().__init__(**kwargs)
            self.linear, self.bn, self.rounded = linear, bn, rounded

        def call(self, x):
            kernel, bias = _folded(self.linear, self.bn)
            if self.rounded:
                kernel = quantize_kernel(kernel)
            if len(kernel.shape) == 4:
                y = tf.nn.conv2d(x, kernel, strides=self.linear.strides, padding=self.linear.padding.upper())
            else:
                y = tf.matmul(x, kernel)
            return y + bias

    class RoundToInt8(keras.layers.Layer):
        """A tensor the int8 file stores in int8: 256 levels over its calibrated range."""

        def __init__(self, low: float, high: float, **kwargs) -> None:
            super().__init__(**kwargs)
            # The converter widens every range to hold 0, so that 0 is exactly a level.
            self.low, self.high = min(float(low), 0.0), max(float(high), _MIN_RANGE)

        def call(self, x):
            return tf.quantization.fake_quant_with_min_max_vars(x, self.low, self.high, num_bits=8)

    return FoldedLinear, RoundToInt8


def _rebuild(model, ranges: list[tuple[float, float]] | None):
    """``model`` (a chain of layers, as ``models.architectures.vgg_elu`` builds) with
    folded kernels. With ``ranges`` None, the float network with every tensor the int8
    file stores as an extra output, to calibrate on as the converter does; else the
    kernels are int8-rounded and each stored tensor is rounded over its range."""
    import keras
    from keras import layers

    FoldedLinear, RoundToInt8 = _layers()
    rounded = ranges is not None
    stored = []

    def store(t):
        if rounded:
            t = RoundToInt8(*ranges[len(stored)])(t)
        stored.append(t)
        return t

    chain = model.layers[1:]
    x = face = keras.Input(model.input_shape[1:], name="face")
    i = 0
    while i < len(chain):
        layer, following = chain[i], chain[i + 1] if i + 1 < len(chain) else None
        if isinstance(layer, (layers.Conv2D, layers.Dense)) and isinstance(following, layers.BatchNormalization):
            x = store(FoldedLinear(layer, following, rounded)(x))
            i += 2
            continue
        if isinstance(layer, layers.Dense) and following is None:
            if layer.activation is not keras.activations.softmax:
                raise ValueError(f"quantization-aware training needs a softmax classifier, not {layer.name}")
            x = keras.ops.softmax(store(FoldedLinear(layer, None, rounded)(x)))
        elif isinstance(layer, (layers.Activation, layers.GlobalAveragePooling2D)):
            x = store(layer(x))
        elif isinstance(layer, (layers.MaxPooling2D, layers.Dropout)):
            x = layer(x)  # max pooling keeps its input's levels; dropout is training-only
        else:
            raise ValueError(f"quantization-aware training does not handle layer {layer.name} "
                             f"({type(layer).__name__})")
        i += 1
    outputs = x if rounded else [x, *stored]
    return keras.Model(face, outputs, name=f"{model.name}_int8_simulated")


def calibrated_ranges(model, faces: np.ndarray, batch: int = 256) -> list[tuple[float, float]]:
    """The (min, max) each stored tensor of ``model`` takes on ``faces`` ((N, S, S, 1)
    float32 in [0, 1]): the converter's calibration, on the same faces."""
    taps = _rebuild(model, None)
    low = high = None
    for start in range(0, len(faces), batch):
        values = taps(faces[start:start + batch], training=False)[1:]
        lo = np.array([float(np.min(v)) for v in values])
        hi = np.array([float(np.max(v)) for v in values])
        low = lo if low is None else np.minimum(low, lo)
        high = hi if high is None else np.maximum(high, hi)
    if low is None:
        raise ValueError("no calibration faces")
    return list(zip(low.tolist(), high.tolist(), strict=True))


def int8_simulated(model, calibration: np.ndarray):
    """A Keras model that computes what ``model``'s int8 file computes (to within the
    converter's integer arithmetic), sharing ``model``'s variables so that training it
    trains ``model``. ``calibration``: (N, S, S, 1) float32 training faces in [0, 1]."""
    return _rebuild(model, calibrated_ranges(model, calibration))
