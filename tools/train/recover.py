"""Rebuild trainable Keras weights from a shipped float32 model, to warm-start training from it.

    facecue-model recover --model models/facecue_vgg_elu_float32.tflite --out runs/recovered
    facecue-model train --run runs/cycle5 --arch vgg_elu-base --init-weights runs/recovered/recovered.weights.h5 ...

Why: run folders (checkpoints, kept epochs) live outside git, so a fresh
clone, a wiped machine or a cloud job has only the shipped files. The float32
twin holds the exact weights the int8 model was quantised from, with each
batch norm folded into the convolution or dense layer before it. This undoes
the fold: kernels and biases go back into the architecture named in the
model's JSON, and each batch norm is given the statistics its input really
has on training faces, so the network computes the same function in
inference mode and starts training (where batch norms use batch statistics)
where the shipped model stands. The result is checked against the file
itself before anything is written.

Writes ``OUT/recovered.weights.h5`` and ``OUT/lineage.json``, the training history from
the model's JSON, which ``tools.train`` carries into the next export.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from core.files import write_atomic
from device.argparser import Parser, UsageError, bounded
from device.classify import ModelError, load_interpreter_class
from models import MODELS_DIR
from tools.data.dataset import load_faces, shared_split
from tools.train.export import representative_faces, with_flip_average
from tools.train.runs import LINEAGE_FILE

WEIGHTS_FILE = "recovered.weights.h5"
MAX_DIFFERENCE = 1e-4  # largest probability difference from the file tolerated after recovery


def read_layers(tflite_file: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The (op, weights, bias) of each CONV_2D and FULLY_CONNECTED op, in graph order,
    weights as stored by TFLite (output channels first)."""
    interpreter = load_interpreter_class()(model_path=str(tflite_file))
    interpreter.allocate_tensors()
    found = []
    for op in interpreter._get_ops_details():  # the interpreter's only view of the graph
        if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED"):
            _, weights, bias = op["inputs"]
            kernel = interpreter.get_tensor(weights).copy()
            # The converter leaves out a bias that is all zeros (an untrained classifier's).
            found.append((op["op_name"], kernel,
                          interpreter.get_tensor(bias).copy() if bias >= 0 else np.zeros(len(kernel), kernel.dtype)))
    if not found or any(w.dtype != np.float32 for _, w, _ in found):
        raise ModelError(f"{tflite_file}: not a float32 model of convolutions and dense layers")
    return found


def unfold(model, layers: list[tuple[str, np.ndarray, np.ndarray]], faces: np.ndarray) -> None:
    """Load folded ``layers`` into ``model`` (a ``models.architectures`` network whose
    convolutions and hidden dense layer each feed a batch norm, and whose last dense
    layer carries the bias), un-folding each batch norm on ``faces``.

    For a folded layer ``z = W x`` plus bias ``b``, the kernel is scaled so that
    ``z`` has unit variance over ``faces`` (the scale a batch norm makes
    irrelevant, and the one training begins from): with ``m`` and ``sigma`` the mean
    and deviation of ``z``, the batch norm gets moving mean ``m / sigma``, moving
    variance 1, ``gamma = sigma`` and ``beta = m + b``, so it gives back ``W x + b``
    exactly in inference mode and, its batch statistics being those, nearly so in training.
    """
    import keras

    dense_types = (keras.layers.Conv2D, keras.layers.Dense)
    targets = [layer for layer in model.layers if isinstance(layer, dense_types)]
    if len(targets) != len(layers):
        raise ModelError(f"the file has {len(layers)} convolution/dense layers, {model.name} has {len(targets)}")
    norms: dict[str, Any] = {}
    for layer, (op, weights, bias) in zip(targets, layers, strict=True):
        kernel = weights.transpose(1, 2, 3, 0) if op == "CONV_2D" else weights.T
        if tuple(layer.kernel.shape) != kernel.shape:
            raise ModelError(f"layer {layer.name}: the file's weights have shape {kernel.shape}, "
                             f"the architecture's {tuple(layer.kernel.shape)}")
        layer.kernel.assign(kernel)
        follower = next((n for n in model.layers if n.input is layer.output), None)
        if isinstance(follower, keras.layers.BatchNormalization):
            norms[layer.name] = (follower, bias)
        elif layer.use_bias:
            layer.bias.assign(bias)
        else:
            raise ModelError(f"layer {layer.name} has no bias and no batch norm to take the file's bias")
    for norm, bias in norms.values():  # adds the bias until measured: the probe reads each W x as the file has it
        channels = norm.gamma.shape
        norm.set_weights([np.ones(channels, np.float32), bias,
                          np.zeros(channels, np.float32), np.full(channels, 1 - norm.epsilon, np.float32)])
    names = list(norms)
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    outputs = probe.predict(faces, batch_size=250, verbose=0)
    for name, z in zip(names, outputs if len(names) > 1 else [outputs], strict=True):
        z = z.reshape(-1, z.shape[-1]).astype(np.float64)
        mean, sigma = z.mean(axis=0), np.maximum(z.std(axis=0), 1e-6)
        layer, (norm, bias) = model.get_layer(name), norms[name]
        layer.kernel.assign((layer.kernel.numpy() / sigma).astype(np.float32))
        norm.gamma.assign((sigma * np.sqrt(1 + norm.epsilon)).astype(np.float32))
        norm.beta.assign((mean + bias).astype(np.float32))
        norm.moving_mean.assign((mean / sigma).astype(np.float32))
        norm.moving_variance.assign(np.ones(norm.moving_variance.shape, np.float32))


def max_difference(model, tflite_file: Path, faces: np.ndarray, flip_average: bool) -> float:
    """Largest difference between ``model``'s probabilities and the file's over ``faces``."""
    keras_probs = (with_flip_average(model) if flip_average else model).predict(faces, batch_size=250, verbose=0)
    interpreter = load_interpreter_class()(model_path=str(tflite_file))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
    worst = 0.0
    for face, expected in zip(faces, keras_probs, strict=True):
        interpreter.set_tensor(inp, face[None])
        interpreter.invoke()
        worst = max(worst, float(np.abs(interpreter.get_tensor(out)[0] - expected).max()))
    return worst


def recovered_lineage(meta: dict[str, Any], tflite_file: Path) -> list[dict[str, Any]]:
    """The model's training history as ``tools.train.runs.lineage`` records it: its warm
    starts, then its own final run, named after the file it was recovered from."""
    train = meta["training"]
    final = {k: v for k, v in train.items() if k in ("epochs_run", "best_epoch", "seconds", "recipe", "averaged_with")}
    return [*train.get("warm_start", []), {"weights": f"{tflite_file.name} {meta['version']}", **final}]


def recover(tflite_file: Path, out: Path, train_file: Path, n_faces: int = 4000, check_faces: int = 200,
            log=print) -> Path:
    """Write ``out/recovered.weights.h5`` and ``out/lineage.json`` recovered from ``tflite_file``
    (a float32 export whose JSON sits beside it). Raises ``ModelError``/``DatasetError``/
    ``OSError``/``ValueError`` with a one-line message; writes nothing on failure."""
    from models.architectures import build

    meta_file = tflite_file.with_suffix(".json")
    try:
        meta = json.loads(meta_file.read_text())
        arch, flip_average = meta["arch"], bool(meta.get("flip_average"))
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise ModelError(f"{meta_file}: no readable model JSON naming the architecture ({exc})") from None
    if meta.get("quantization") != "float32":
        raise ModelError(f"{tflite_file}: recovery needs the float32 twin, not a {meta.get('quantization')} model")
    faces = representative_faces(load_faces(train_file), n_faces, seed=0)

    model = build(arch)
    unfold(model, read_layers(tflite_file), faces)
    worst = max_difference(model, tflite_file, faces[:check_faces], flip_average)
    if worst > MAX_DIFFERENCE:
        raise ModelError(f"recovered {arch} differs from {tflite_file} by {worst:.2e} in probability")
    log(f"recovered {arch} from {tflite_file} (version {meta.get('version')}); "
        f"largest probability difference {worst:.1e} on {check_faces} faces")

    out.mkdir(parents=True, exist_ok=True)
    scratch = out / f".partial.{WEIGHTS_FILE}"  # Keras writes in place; the rename makes it whole or absent
    model.save_weights(scratch)
    os.replace(scratch, out / WEIGHTS_FILE)
    write_atomic(out / LINEAGE_FILE, json.dumps(recovered_lineage(meta, tflite_file), indent=1).encode())
    log(f"wrote {out / WEIGHTS_FILE} and {out / LINEAGE_FILE}")
    return out / WEIGHTS_FILE


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="facecue-model recover", description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=MODELS_DIR / "facecue_vgg_elu_float32.tflite",
                   help="a float32 .tflite written by tools.train.export, its JSON beside it")
    p.add_argument("--out", type=Path, required=True, help="folder for recovered.weights.h5 and lineage.json")
    p.add_argument("--train", type=Path, default=shared_split("train"),
                   help="training npz whose faces measure the batch norms")
    p.add_argument("--faces", type=bounded(int, at_least=1), default=4000,
                   help="training faces to measure the batch norms on")
    args = p.parse_args(argv)
    if args.train is None:
        raise UsageError("no training data: pass --train FILE.npz")
    recover(args.model, args.out, args.train, args.faces)
    return 0
