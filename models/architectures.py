"""Keras definitions of the expression networks (training and export only).

``vgg_elu``: the seed study's "modified VGG-16" (after Pasupa et al.): VGG's
stacked 3x3 convolutions and max pooling, ELU instead of ReLU, batch norm,
global average pooling and a small dense head, slimmed for 48x48 grey faces
so its int8 file stays within 3 MB and one face takes under 2 ms on one core
(about 0.9 ms, or 1.8 ms when the file also scores the mirror image).

``vgg16``: the plain VGG-16 topology (13 conv + 3 dense, ReLU) at 48x48,
trained from scratch (no ImageNet weights can be fetched here); the speed
and accuracy baseline.
"""
from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

NUM_CLASSES = 7
INPUT_SHAPE = (48, 48, 1)

# Candidate sizes measured before choosing (facecue-model train --measure).
VGG_ELU_SIZES: dict[str, tuple[Sequence[int], Sequence[int]]] = {
    "tiny": ((16, 32, 64, 128), (2, 2, 3, 3)),
    "small": ((24, 48, 96, 192), (2, 2, 2, 2)),
    "base": ((32, 64, 128, 256), (2, 2, 3, 3)),
    "wide": ((36, 72, 144, 288), (2, 2, 3, 3)),
}


def _conv_bn_elu(x, filters: int, name: str):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("elu", name=f"{name}_elu")(x)


def vgg_elu(
    widths: Sequence[int] = VGG_ELU_SIZES["small"][0],
    depths: Sequence[int] = VGG_ELU_SIZES["small"][1],
    dense: int = 128,
    dropout: float = 0.4,
    num_classes: int = NUM_CLASSES,
) -> keras.Model:
    """The modified VGG-16: conv blocks of ``depths[i]`` 3x3 convs of ``widths[i]``."""
    inputs = keras.Input(INPUT_SHAPE, name="face")
    x = inputs
    for b, (width, depth) in enumerate(zip(widths, depths, strict=True), start=1):
        for c in range(1, depth + 1):
            x = _conv_bn_elu(x, width, f"block{b}_{c}")
        x = layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
        x = layers.Dropout(0.1 * b / len(widths), name=f"block{b}_drop")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(dense, use_bias=False, name="fc")(x)
    x = layers.BatchNormalization(name="fc_bn")(x)
    x = layers.Activation("elu", name="fc_elu")(x)
    x = layers.Dropout(dropout, name="fc_drop")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="expression")(x)
    return keras.Model(inputs, outputs, name="vgg_elu")


def vgg16(num_classes: int = NUM_CLASSES, dense: int = 4096) -> keras.Model:
    """Plain VGG-16 (configuration D) on 48x48x1, ReLU, three dense layers."""
    inputs = keras.Input(INPUT_SHAPE, name="face")
    x = inputs
    for b, (width, depth) in enumerate(zip((64, 128, 256, 512, 512), (2, 2, 3, 3, 3), strict=True), start=1):
        for c in range(1, depth + 1):
            x = layers.Conv2D(width, 3, padding="same", activation="relu", name=f"block{b}_conv{c}")(x)
        x = layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense, activation="relu", name="fc1")(x)
    x = layers.Dropout(0.5)(x)
    x = layers.Dense(dense, activation="relu", name="fc2")(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="expression")(x)
    return keras.Model(inputs, outputs, name="vgg16")


def build(arch: str, dropout: float = 0.4) -> keras.Model:
    """``vgg16`` or ``vgg_elu[-SIZE]`` (SIZE one of :data:`VGG_ELU_SIZES`).

    ``dropout`` (before the vgg_elu classifier) only matters while training.
    """
    if arch == "vgg16":
        return vgg16()
    name, _, size = arch.partition("-")
    if name == "vgg_elu":
        size = size or "small"
        if size not in VGG_ELU_SIZES:
            raise ValueError(f"unknown vgg_elu size {size!r}; choose from {sorted(VGG_ELU_SIZES)}")
        widths, depths = VGG_ELU_SIZES[size]
        return vgg_elu(widths, depths, dropout=dropout)
    raise ValueError(f"unknown architecture {arch!r}; use vgg16 or vgg_elu-SIZE")


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one forward pass (conv and dense layers)."""
    macs = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            c_in = layer.input.shape[-1]
            macs += h * w * c_out * kh * kw * c_in
        elif isinstance(layer, layers.Dense):
            macs += layer.input.shape[-1] * layer.units
    return int(macs)
