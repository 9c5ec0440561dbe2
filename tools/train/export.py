"""Export a trained run as the shipped int8 TFLite model (and a float32 twin) with metadata.

    facecue-model export --run runs/final --out models/ [--name facecue_vgg_elu] [--version X]
        [--flip-average] [--average OTHER.weights.h5 ...] [--logit-adjust TAU]

Writes ``NAME_int8.tflite`` + ``NAME_int8.json`` (the model the device loads)
and ``NAME_float32.tflite`` + ``.json`` (for comparison). Both are scored on
the validation set through ``device.classify.Classifier`` -- the wearer's
own preprocessing and interpreter -- before anything is installed, so the
accuracy in the JSON is the accuracy on the hat. Files are staged in a
hidden folder inside ``--out`` and moved into place only when all checks ran.

``--logit-adjust TAU`` subtracts TAU times the log of each class's share of the
training targets from the classifier's biases (Menon et al. 2021, post-hoc
logit adjustment): a class the training data holds little of (fear, disgust)
is no longer outvoted by the data's prior alone. It changes the file, not
the device code.

The MLIR converter cannot quantise ELU (tensorflow/tensorflow#63065): the
ELUs run in float between int8 layers. Weights, convolutions, dense layers,
input and output are int8; fusing the ELUs into int8 look-up tables by
rewriting the flatbuffer was measured at the same speed on x86 XNNPACK, so
the stock converter output ships.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.files import write_atomic
from device.argparser import Parser
from device.classify import load_interpreter_class, sha256_file
from device.preprocess import crop_metadata
from tools.data.augment import to_input
from tools.data.dataset import DatasetError, FaceSet, load_faces
from tools.data.ferplus import majority_faces
from tools.eval.evaluate import evaluate_model
from tools.eval.metrics import Scores, describe_int8_drop, score
from tools.train.averaging import average_weights, reestimate_batch_norm
from tools.train.fit import training_targets
from tools.train.runs import FinishedRun, TrainConfig, history_seconds, load_run, recipe, recorded_machine, run_lineage

DEFAULT_NAME = "facecue_vgg_elu"
CALIBRATION_FACES = 3000  # training faces the int8 activation ranges are measured on
MAX_INT8_DROP = 0.005  # the budget: int8 may lose at most 0.5 point of accuracy


def representative_faces(train: FaceSet, n: int, seed: int) -> np.ndarray:
    """``n`` random training faces, preprocessed and scaled as in training, for the
    int8 calibration of activation ranges (and the batch norms of averaged weights)."""
    idx = np.random.default_rng(seed).choice(len(train), size=min(n, len(train)), replace=False)
    return to_input(FaceSet(train.images[idx], train.labels[idx], train.classes).preprocessed())


def _convert(converter) -> bytes:
    """Run a converter with its stdout chatter (the SavedModel signature dump) and
    its warning that int8 input has no statistics (we set the input type) silenced."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        return converter.convert()


def convert_float(model) -> bytes:
    import tensorflow as tf

    return _convert(tf.lite.TFLiteConverter.from_keras_model(model))


def convert_int8(model, representative: np.ndarray) -> bytes:
    """Full-integer post-training quantisation with int8 input and output."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([representative[i:i + 1]] for i in range(len(representative)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return _convert(converter)


def with_flip_average(model):
    """``model`` wrapped to score each face and its mirror image in one batch of two and
    average the probabilities: test-time augmentation inside the file, so the device
    code is unchanged. One copy of the weights; twice the multiply-accumulates."""
    import keras

    face = keras.Input(model.input_shape[1:], name="face")
    both = keras.ops.concatenate([face, keras.ops.flip(face, axis=2)], axis=0)
    probs = model(both, training=False)
    averaged = keras.ops.mean(keras.ops.reshape(probs, (2, -1, probs.shape[-1])), axis=0)
    return keras.Model(face, averaged, name=f"{model.name}_flip_average")


def tensor_specs(tflite_file: Path) -> dict[str, dict[str, Any]]:
    """The ``input`` and ``output`` entries of the metadata, read from the model itself."""
    interpreter = load_interpreter_class()(model_path=str(tflite_file))
    specs = {}
    for key, detail in (("input", interpreter.get_input_details()[0]),
                        ("output", interpreter.get_output_details()[0])):
        scale, zero_point = detail["quantization"]
        specs[key] = {"shape": [int(d) for d in detail["shape"]], "dtype": np.dtype(detail["dtype"]).name,
                      "scale": float(scale), "zero_point": int(zero_point)}
    return specs


@dataclass(frozen=True)
class ExportOptions:
    """How a run is exported: what the files are called and which weights go into them."""

    name: str = DEFAULT_NAME  # file stem: NAME_int8.tflite, NAME_float32.tflite
    version: str = ""  # empty: today's date, YYYY.MM.DD
    valid: str = ""  # validation npz to score on; empty: the run's
    weights: str = "best"  # best, last (the newest checkpoint) or a weights file of the run's arch
    # Further weights files of the same arch to average with ``weights``; batch-norm
    # statistics are then re-estimated on ``bn_faces`` training faces (0: averaged as they are).
    average: tuple[Path, ...] = ()
    bn_faces: int = 8000
    flip_average: bool = False  # score each face and its mirror image inside the model
    calib: int = CALIBRATION_FACES  # training faces the int8 activation ranges are measured on
    threads: int = 2  # interpreter threads for scoring the exported files
    logit_adjust: float = 0.0  # tau of the post-hoc logit adjustment by the training prior (0: none)

    def check(self) -> None:
        if self.calib < 1 or self.threads < 1 or self.bn_faces < 0:
            raise ValueError("--calib and --threads must be at least 1, --bn-faces at least 0")
        if not 0.0 <= self.logit_adjust <= 2.0:
            raise ValueError(f"--logit-adjust {self.logit_adjust}: a tau between 0 and 2")


def training_prior(cfg: TrainConfig, train: FaceSet) -> np.ndarray:
    """Each class's share of the run's training targets (votes or labels, as it trained)."""
    targets, keep = training_targets(cfg, train)
    return targets[keep].mean(axis=0)


def adjust_logits(model, prior: np.ndarray, tau: float) -> None:
    """Subtract ``tau * log(prior)`` from the biases of the model's last layer, whose
    softmax then scores each class against the training data's prior."""
    last = model.layers[-1]
    kernel, bias = last.get_weights()
    last.set_weights([kernel, (bias - tau * np.log(np.maximum(prior, 1e-6))).astype(bias.dtype)])


def model_metadata(tflite_file: Path, quantization: str, trained: FinishedRun, n_train: int,
                   options: ExportOptions, averaged: dict[str, Any] | None,
                   adjustment: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything but ``accuracy`` (added once the model has been scored)."""
    from models.architectures import count_macs

    cfg, state = trained.cfg, trained.state
    flip_average = options.flip_average
    return {
        "name": options.name,
        "quantization": quantization,
        "version": options.version,
        "file": tflite_file.name,
        "sha256": sha256_file(tflite_file),
        "size": tflite_file.stat().st_size,
        "labels": list(trained.classes),
        **tensor_specs(tflite_file),
        "preprocessing": crop_metadata(),
        "flip_average": flip_average,
        "macs": count_macs(trained.model) * (2 if flip_average else 1),
        "params": int(trained.model.count_params()),
        "arch": cfg.arch,
        "training": {
            "recipe": recipe(cfg),
            "n_train": n_train,
            "epochs_run": int(state.get("epoch", 0)),
            "best_epoch": int(state.get("best_epoch", 0)),
            "weights": options.weights,
            "seconds": history_seconds(state),
            # A warm-started run's parents: their recipes, epochs and seconds count too.
            "warm_start": run_lineage(trained.run, cfg),
            "machine": recorded_machine(state),
            **({"averaged_with": averaged} if averaged else {}),
            **({"logit_adjustment": adjustment} if adjustment else {}),
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def accuracy_block(keras: Scores, float32: Scores, int8: Scores, valid_file: Path) -> dict[str, Any]:
    return {
        "valid_keras": keras.accuracy,
        "valid_float": float32.accuracy,
        "valid_int8": int8.accuracy,
        "int8_drop_pt": round(100 * (keras.accuracy - int8.accuracy), 3),
        "macro_f1_int8": int8.macro_f1,
        "per_class_recall_int8": dict(zip(int8.classes, map(float, int8.recall), strict=True)),
        "n_valid": int8.n,
        "data": f"{valid_file.name} sha256 {sha256_file(valid_file)}",
    }


def ferplus_block(int8_file: Path, valid_set: FaceSet, votes_file: Path, threads: int) -> dict[str, Any]:
    """The int8 model against the FER+ majority of the validation faces that have one."""
    scores = evaluate_model(int8_file, majority_faces(valid_set, votes_file), threads)
    return {
        "ferplus_majority_int8": scores.accuracy,
        "ferplus_per_class_recall_int8": dict(zip(scores.classes, map(float, scores.recall), strict=True)),
        "ferplus_n": scores.n,
        "ferplus_votes": f"{votes_file.name} sha256 {sha256_file(votes_file)}",
    }


def export_run(run: Path, out: Path, options: ExportOptions = ExportOptions(), log=print) -> dict[str, Path]:
    """Convert, score and install the int8 and float32 models of ``run`` into ``out``.

    Returns the installed paths by key (``int8``, ``int8_json``, ``float32``,
    ``float32_json``). Raises ``DatasetError``/``ModelError``/``OSError``/
    ``ValueError`` with a one-line message, leaving ``out`` untouched.
    """
    options.check()
    options = dataclasses.replace(options, version=options.version or time.strftime("%Y.%m.%d"))
    weights, valid, average, bn_faces = options.weights, options.valid, options.average, options.bn_faces
    trained = load_run(run, weights, valid="")
    if not (valid or trained.cfg.valid):
        raise DatasetError("no validation data: the run has none, pass --valid FILE.npz")
    valid_file = Path(valid or trained.cfg.valid)
    valid_set = load_faces(valid_file)
    if valid_set.classes != trained.classes:
        raise DatasetError(f"{valid_file}: classes {list(valid_set.classes)} differ from "
                           f"the run's {list(trained.classes)}")
    train_set = load_faces(trained.cfg.train)
    n_train = min(len(train_set), trained.cfg.limit or len(train_set))

    log(f"converting {trained.cfg.arch} from {run} ({weights} weights, epoch "
        f"{trained.state.get('best_epoch') if weights == 'best' else trained.state.get('epoch')})")
    averaged = None
    if average:
        log(f"averaging with {', '.join(map(str, average))}; batch norms "
            + (f"re-estimated on {bn_faces} training faces" if bn_faces else "averaged as they are"))
        average_weights(trained.model, average)
        if bn_faces:
            reestimate_batch_norm(trained.model, representative_faces(train_set, bn_faces, trained.cfg.seed + 1))
        averaged = {"weights": [str(w) for w in average], "bn_faces": min(bn_faces, len(train_set))}
    adjustment = None
    if options.logit_adjust:
        prior = training_prior(trained.cfg, train_set)
        adjust_logits(trained.model, prior, options.logit_adjust)
        adjustment = {"tau": options.logit_adjust,
                      "prior": {c: round(float(p), 4) for c, p in zip(trained.classes, prior, strict=True)}}
        log(f"logit adjustment tau {options.logit_adjust} by the training prior {adjustment['prior']}")
    model = with_flip_average(trained.model) if options.flip_average else trained.model
    blobs = {"int8": convert_int8(model, representative_faces(train_set, options.calib, trained.cfg.seed)),
             "float32": convert_float(model)}
    keras_probs = model.predict(to_input(valid_set.preprocessed()), batch_size=512, verbose=0)
    keras_scores = score(valid_set.labels, keras_probs.argmax(axis=1), valid_set.classes)

    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".export-", dir=out))
    try:
        metas, scores = {}, {}
        for kind, blob in blobs.items():
            model_file = stage / f"{options.name}_{kind}.tflite"
            write_atomic(model_file, blob)
            metas[kind] = model_metadata(model_file, kind, trained, n_train, options, averaged, adjustment)
            write_atomic(model_file.with_suffix(".json"), json.dumps(metas[kind], indent=1).encode())
            scores[kind] = evaluate_model(model_file, valid_set, options.threads)
        accuracy = accuracy_block(keras_scores, scores["float32"], scores["int8"], valid_file)
        if trained.cfg.valid_votes:
            accuracy.update(ferplus_block(stage / f"{options.name}_int8.tflite", valid_set,
                                          Path(trained.cfg.valid_votes), options.threads))
        installed = {}
        for kind, meta in metas.items():
            meta["accuracy"] = accuracy
            staged = stage / meta["file"]
            write_atomic(staged.with_suffix(".json"), json.dumps(meta, indent=1).encode())
            for src in (staged, staged.with_suffix(".json")):
                os.replace(src, out / src.name)
            installed[kind], installed[f"{kind}_json"] = out / staged.name, out / staged.with_suffix(".json").name
    finally:
        shutil.rmtree(stage, ignore_errors=True)

    if "ferplus_majority_int8" in accuracy:
        log(f"valid FER+ majority int8 {accuracy['ferplus_majority_int8']:.4f}, n {accuracy['ferplus_n']}")
    log(f"valid accuracy keras {keras_scores.accuracy:.4f} float32 {scores['float32'].accuracy:.4f} "
        f"int8 {scores['int8'].accuracy:.4f} ({describe_int8_drop(accuracy['int8_drop_pt'])}), "
        f"int8 macro_f1 {scores['int8'].macro_f1:.4f}, n {scores['int8'].n}")
    if keras_scores.accuracy - scores["int8"].accuracy > MAX_INT8_DROP:
        log(f"warning: int8 accuracy drop {accuracy['int8_drop_pt']:.2f} pt exceeds {100 * MAX_INT8_DROP:.1f} pt")
    for kind in blobs:
        log(f"wrote {installed[kind]} ({metas[kind]['size'] / 1e6:.2f} MB) version {options.version}")
    return installed


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="facecue-model export", description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="run folder written by tools.train")
    p.add_argument("--out", type=Path, default=Path("models"), help="folder to install the models into")
    p.add_argument("--name", default=DEFAULT_NAME, help="file name stem: NAME_int8.tflite, NAME_float32.tflite")
    p.add_argument("--version", default="", help="model version (default: today, YYYY.MM.DD)")
    p.add_argument("--valid", default="", help="validation npz (default: the run's)")
    p.add_argument("--weights", default="best", metavar="best|last|FILE",
                   help="best.weights.h5, the newest checkpoint (a run still training), or a weights file "
                        "of the run's architecture (e.g. a kept epoch, with --average the others)")
    p.add_argument("--calib", type=int, default=CALIBRATION_FACES,
                   help="training faces for int8 calibration (fewer lose accuracy: see the model card)")
    p.add_argument("--threads", type=int, default=2, help="interpreter threads for the validation check")
    p.add_argument("--flip-average", action="store_true",
                   help="average each face with its mirror image inside the model (twice the compute)")
    p.add_argument("--average", type=Path, nargs="+", default=[], metavar="WEIGHTS",
                   help="average the run's weights with these .weights.h5 of the same architecture "
                        "(e.g. the previous cycle's best)")
    p.add_argument("--logit-adjust", type=float, default=0.0, metavar="TAU",
                   help="subtract TAU x log(training prior) from the classifier's biases (0: off)")
    p.add_argument("--bn-faces", type=int, default=8000,
                   help="training faces to re-estimate batch-norm statistics on after --average "
                        "(0: keep the files' averaged statistics)")
    args = p.parse_args(argv)
    options = ExportOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ExportOptions)})
    export_run(args.run, args.out, dataclasses.replace(options, average=tuple(args.average)))
    return 0
