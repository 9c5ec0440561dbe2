"""Train the expression model on FER2013-format data, resumable epoch by epoch.

    facecue-train run models/facecue_vgg_elu.recipe.toml     # the shipped model, every stage
    python -m tools.train --run runs/final --arch vgg_elu-small --epochs 40
    python -m tools.train --run runs/final --resume          # after a stop
    python -m tools.train --measure vgg_elu-tiny vgg_elu-small vgg_elu-base

Every epoch ends with an atomic checkpoint (weights, optimizer slots, RNG
position, history), so a session that is cut off loses at most the epoch in
flight. Faces go through the device's own ``preprocess_face`` once, up front;
augmentation is NumPy/OpenCV in a worker thread beside the TensorFlow step.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.files import write_atomic
from tools.augment import AugmentParams, augment, camera, cutmix, to_input
from tools.dataset import DatasetError, FaceSet, load_faces, shared_split

# A warm-started run's history (``lineage``), written into its folder at its first start.
WARM_START_FILE = "warm_start.json"
# The history of a weights file that is not in a run folder (rebuilt by tools.recover,
# or carried to a SageMaker job), beside it.
LINEAGE_FILE = "lineage.json"


@dataclass
class TrainConfig:
    arch: str = "vgg_elu-small"
    train: str = ""
    valid: str = ""
    epochs: int = 40
    batch: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    class_weight: str = "sqrt"  # none | sqrt | balanced
    dropout: float = 0.4  # before the classifier; the conv blocks keep their light fixed dropout
    erase_prob: float = 0.35  # share of faces given a random-erasing box
    cutmix: float = 0.0  # share of faces given a box of another face, labels mixed by area
    camera: float = 0.0  # share of faces degraded as a hat camera would (tools.augment.camera)
    # The training faces again, re-framed by tools.align_faces (same order and labels);
    # several renders of them give each re-framed face a different scene each time.
    reframed: tuple[str, ...] = ()
    reframed_share: float = 0.0  # share of faces drawn from ``reframed`` in each batch
    init_weights: str = ""  # warm start: a weights file of the same arch (e.g. runs/final/best.weights.h5)
    limit: int = 0  # train on a random N of the training faces (smoke tests)
    seed: int = 1
    threads: int = 0  # 0: all cores
    keep_from: int = 0  # keep each epoch's weights from this epoch on in <run>/epochs/ (0: none), to average later

    def __post_init__(self) -> None:
        # One file (older runs' configs, a recipe's single stage) or a JSON list.
        if isinstance(self.reframed, str):
            self.reframed = (self.reframed,) if self.reframed else ()
        self.reframed = tuple(self.reframed)

    @classmethod
    def from_json(cls, path: Path) -> "TrainConfig":
        """A saved config; settings of removed experiments (older runs' teacher, distill,
        quant_aware) are left out, since the trainer no longer has them."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in json.loads(path.read_text()).items() if k in known})

    @classmethod
    def from_args(cls, args: argparse.Namespace, skip: tuple[str, ...] = ()) -> "TrainConfig":
        """The config a command line asked for: one flag per field, so a new field needs no
        hand-kept list; ``skip`` leaves fields at their defaults (flags meaning something else there)."""
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if f.name not in skip})


def class_weights(labels: np.ndarray, n_classes: int, mode: str) -> np.ndarray:
    """Per-class loss weights, mean 1 over the training faces.

    ``sqrt`` (inverse square-root frequency) lifts the rare ``disgust`` class
    (436 of 28,709) without wrecking the common ones the way full inverse
    frequency (``balanced``) does.
    """
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    counts = np.maximum(counts, 1)
    if mode == "none":
        w = np.ones(n_classes)
    elif mode == "sqrt":
        w = 1.0 / np.sqrt(counts)
    elif mode == "balanced":
        w = 1.0 / counts
    else:
        raise ValueError(f"class_weight must be none, sqrt or balanced, not {mode!r}")
    return (w / (w[labels].mean())).astype(np.float32)


def training_targets(train: FaceSet) -> np.ndarray:
    """Each training face's target row: its one-hot label (CutMix blends rows later)."""
    return np.eye(len(train.classes), dtype=np.float32)[train.labels]


def reframed_faces(cfg: TrainConfig, train: FaceSet) -> list[FaceSet]:
    """The renders of ``cfg.reframed``, each refused (one line) unless it holds
    ``train``'s faces in the same order: same count, size and labels.

    Why both framings: the device frames a live face by its landmarks, while
    FER2013's crops keep their source's framing, and the shipped model must hold
    up on both (the device path, and the crops it is benchmarked on).
    """
    renders = []
    for path in cfg.reframed:
        try:
            other = load_faces(path)
        except DatasetError as exc:
            raise SystemExit(f"error: --reframed: {exc}") from None
        if other.images.shape != train.images.shape or not np.array_equal(other.labels, train.labels):
            raise SystemExit(f"error: --reframed {path}: not the training faces re-framed "
                             f"({len(other)} faces of {other.images.shape[1:]} against {len(train)} of "
                             f"{train.images.shape[1:]}, or other labels)")
        renders.append(other)
    return renders


class Progress:
    """One line per epoch: a live bar on a terminal, periodic lines in a log."""

    def __init__(self, epoch: int, epochs: int, steps: int) -> None:
        self.epoch, self.epochs, self.steps = epoch, epochs, steps
        self.start = time.monotonic()
        self.tty = sys.stdout.isatty()
        self.last_print = 0.0

    def update(self, step: int, loss: float, acc: float) -> None:
        now = time.monotonic()
        if step < self.steps and now - self.last_print < (0.5 if self.tty else 30.0):
            return
        self.last_print = now
        elapsed = now - self.start
        eta = elapsed / step * (self.steps - step)
        filled = int(24 * step / self.steps)
        bar = "#" * filled + "." * (24 - filled)
        line = (f"epoch {self.epoch}/{self.epochs} [{bar}] {step}/{self.steps} "
                f"loss {loss:.4f} acc {acc:.4f} {elapsed:.0f}s eta {eta:.0f}s")
        print(("\r" + line) if self.tty else line, end="" if self.tty and step < self.steps else "\n", flush=True)


class Trainer:
    """Owns the model, optimizer and checkpoint of one run folder."""

    def __init__(self, cfg: TrainConfig, run: Path, train: FaceSet, valid: FaceSet | None) -> None:
        import keras
        import tensorflow as tf

        from models.architectures import build

        if cfg.threads:
            tf.config.threading.set_intra_op_parallelism_threads(cfg.threads)
        self.tf, self.keras = tf, keras
        self.cfg, self.run = cfg, run
        self.classes = train.classes
        self.train_x = train.preprocessed()
        self.train_y = train.labels
        self.train_targets = training_targets(train)
        self.train_reframed = np.stack([r.preprocessed() for r in reframed_faces(cfg, train)]) \
            if cfg.reframed_share else None
        if cfg.limit:
            # A random subset: the data files are ordered by class, so the first N would be one class.
            keep = np.sort(np.random.default_rng(cfg.seed).permutation(len(self.train_y))[: cfg.limit])
            self.train_x, self.train_y, self.train_targets = \
                self.train_x[keep], self.train_y[keep], self.train_targets[keep]
            if self.train_reframed is not None:
                self.train_reframed = self.train_reframed[:, keep]
        self.valid_x = to_input(valid.preprocessed()) if valid is not None else None
        self.valid_y = valid.labels if valid is not None else None
        self.weights = class_weights(self.train_y, len(self.classes), cfg.class_weight)
        self.steps = int(np.ceil(len(self.train_y) / cfg.batch))

        keras.utils.set_random_seed(cfg.seed)
        self.model = build(cfg.arch, dropout=cfg.dropout)
        if cfg.init_weights:
            # A second cosine cycle from a finished run: cheaper than starting again from scratch.
            self.model.load_weights(cfg.init_weights)
        net = self.model  # the network the steps below train and score
        self.augment_params = AugmentParams(erase_prob=cfg.erase_prob)
        total = max(cfg.epochs * self.steps, 1)
        warmup = min(int(cfg.warmup_epochs * self.steps), total - 1)
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=cfg.lr * 0.1 if warmup else cfg.lr,
            decay_steps=total - warmup, alpha=0.01,
            warmup_target=cfg.lr if warmup else None, warmup_steps=warmup)
        self.opt = keras.optimizers.SGD(schedule, momentum=cfg.momentum, nesterov=True,
                                        weight_decay=cfg.weight_decay)
        self.opt.build(net.trainable_variables)
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing, reduction=None)
        opt = self.opt

        @tf.function(reduce_retracing=True)
        def train_step(x, targets, w):
            with tf.GradientTape() as tape:
                p = net(x, training=True)
                per = loss(targets, p) * w
                value = tf.reduce_mean(per)
            grads = tape.gradient(value, net.trainable_variables)
            opt.apply_gradients(zip(grads, net.trainable_variables, strict=True))
            hits = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(p, 1), tf.argmax(targets, 1)), tf.float32))
            return value, hits

        @tf.function(reduce_retracing=True)
        def predict_step(x):
            return net(x, training=False)

        self.train_step, self.predict_step = train_step, predict_step
        self.state = {"epoch": 0, "history": [], "best_acc": -1.0, "best_epoch": 0}

    # checkpoints -------------------------------------------------------------
    @property
    def ckpt_dir(self) -> Path:
        return self.run / "checkpoint"

    def save(self) -> None:
        """Write weights + optimizer slots (and, from ``keep_from`` on, a kept copy of the
        weights), then the state file that points at them.

        The state file is replaced last, so a kill at any moment leaves the
        previous complete checkpoint in force.
        """
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        epoch = self.state["epoch"]
        weights = self.ckpt_dir / f"epoch{epoch:03d}.weights.h5"
        slots = self.ckpt_dir / f"epoch{epoch:03d}.optimizer.npz"
        self.model.save_weights(weights)
        with open(slots, "wb") as f:
            np.savez(f, *[v.numpy() for v in self.opt.variables])
        if self.cfg.keep_from and epoch >= self.cfg.keep_from:
            kept = self.run / "epochs" / weights.name
            kept.parent.mkdir(exist_ok=True)
            write_atomic(kept, weights.read_bytes())
        state = dict(self.state, weights=weights.name, optimizer=slots.name)
        write_atomic(self.ckpt_dir / "state.json", json.dumps(state, indent=1).encode())
        for old in self.ckpt_dir.glob("epoch*"):
            if not old.name.startswith(f"epoch{epoch:03d}."):
                old.unlink()

    def restore(self) -> bool:
        state_file = self.ckpt_dir / "state.json"
        if not state_file.is_file():
            return False
        state = json.loads(state_file.read_text())
        self.model.load_weights(self.ckpt_dir / state.pop("weights"))
        with np.load(self.ckpt_dir / state.pop("optimizer")) as slots:
            values = [slots[f"arr_{i}"] for i in range(len(slots.files))]
        if len(values) != len(self.opt.variables):
            raise RuntimeError("checkpoint optimizer state does not match this model")
        for var, value in zip(self.opt.variables, values, strict=True):
            var.assign(value)
        self.state = state
        return True

    # training ----------------------------------------------------------------
    def evaluate(self, x: np.ndarray, batch: int = 512) -> np.ndarray:
        return np.concatenate([self.predict_step(x[i:i + batch]).numpy() for i in range(0, len(x), batch)])

    def framed(self, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Training rows ``idx`` before augmentation, each in its own framing or, in the
        share ``reframed_share``, re-framed (from one of the renders, drawn per face).
        Random numbers are drawn only for what a run has, so runs without re-framed
        faces, or with one render, keep their batches."""
        if self.train_reframed is None:
            return self.train_x[idx]
        picked = rng.random(len(idx)) < self.cfg.reframed_share
        render = rng.integers(len(self.train_reframed), size=len(idx)) if len(self.train_reframed) > 1 else 0
        return np.where(picked[:, None, None], self.train_reframed[render, idx], self.train_x[idx])

    def batch(self, idx: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The augmented faces of training rows ``idx``, their (soft) targets, and their
        loss weights: the class weights mixed in the same shares as the targets."""
        x = augment(camera(self.framed(idx, rng), rng, self.cfg.camera), rng, self.augment_params)
        x, targets = cutmix(x, self.train_targets[idx], rng, self.cfg.cutmix)
        return x, targets, targets @ self.weights

    def epoch_batches(self, epoch: int):
        """Yield (faces, targets, weights) batches for ``epoch``, made one ahead in a worker
        thread; they depend only on (seed, epoch)."""
        rng = np.random.default_rng([self.cfg.seed, epoch])
        order = rng.permutation(len(self.train_y))
        chunks = [order[i:i + self.cfg.batch] for i in range(0, len(order), self.cfg.batch)]
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            job = pool.submit(self.batch, chunks[0], rng)
            for k in range(len(chunks)):
                ready = job.result()
                if k + 1 < len(chunks):
                    job = pool.submit(self.batch, chunks[k + 1], rng)
                yield ready

    def fit(self, log=print, stop_after: int | None = None) -> dict:
        """Train to ``cfg.epochs``, or stop early (resumably) after epoch ``stop_after``,
        as a session's end would (the resume tests use it)."""
        cfg = self.cfg
        self.state.setdefault("machine", describe_machine(self.tf))
        for epoch in range(self.state["epoch"] + 1, cfg.epochs + 1):
            start = time.monotonic()
            progress = Progress(epoch, cfg.epochs, self.steps)
            loss_sum = acc_sum = 0.0
            for step, (x, y, w) in enumerate(self.epoch_batches(epoch), start=1):
                loss, acc = self.train_step(x, y, w)
                loss_sum += float(loss)
                acc_sum += float(acc)
                progress.update(step, loss_sum / step, acc_sum / step)
            row = {"epoch": epoch, "loss": loss_sum / self.steps, "acc": acc_sum / self.steps,
                   "seconds": round(time.monotonic() - start, 1)}
            if self.valid_x is not None:
                probs = self.evaluate(self.valid_x)
                row["val_loss"] = float(np.mean(-np.log(probs[np.arange(len(probs)), self.valid_y] + 1e-7)))
                row["val_acc"] = float(np.mean(probs.argmax(1) == self.valid_y))
                if row["val_acc"] > self.state["best_acc"]:
                    self.state.update(best_acc=row["val_acc"], best_epoch=epoch)
                    self.model.save_weights(self.run / "best.weights.h5")
            self.state["epoch"] = epoch
            self.state["history"].append(row)
            self.save()
            log("done " + " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
            if epoch == stop_after:
                break
        if self.valid_x is None:
            self.model.save_weights(self.run / "best.weights.h5")
        return self.state


def describe_machine(tf=None) -> str:
    """CPU model, core count and any GPU TensorFlow sees: recorded with a run so
    its epoch times can be compared with others."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores"
    gpus = tf.config.list_physical_devices("GPU") if tf is not None else []
    return text + (f", {len(gpus)} GPU" if gpus else "")


def recorded_machine(state: dict) -> str:
    """The machine a run's state names; runs from before it was recorded get this one, marked so."""
    return state.get("machine") or f"{describe_machine()} (where this was written; the run did not record one)"


@dataclass
class FinishedRun:
    """A run folder read back for reports and export: what the trainer held at its end."""

    run: Path
    cfg: TrainConfig
    state: dict
    model: object  # keras.Model with the chosen weights loaded
    classes: tuple[str, ...]
    valid_x: np.ndarray | None  # (N, 48, 48, 1) float32, as the trainer scored it
    valid_y: np.ndarray | None


def load_run(run: Path, weights: str = "best", valid: str | None = None) -> FinishedRun:
    """Rebuild a run's model from its folder without the optimizer or training set.

    ``weights="best"`` loads ``best.weights.h5`` (the best valid epoch);
    ``"last"`` loads the newest checkpoint, for exporting a run that is still
    training while ``best.weights.h5`` might be mid-write; any other value is a
    weights file of the run's architecture (a kept epoch, an average). ``valid`` overrides
    the validation npz named in the run's config; ``""`` skips validation data.
    """
    from models.architectures import build

    config_file, state_file = run / "config.json", run / "checkpoint" / "state.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{run} is not a run folder (no config.json)")
    cfg = TrainConfig.from_json(config_file)
    state = json.loads(state_file.read_text()) if state_file.is_file() else {"epoch": 0, "history": []}
    if weights == "best":
        weights_file = run / "best.weights.h5"
    elif weights == "last":
        if "weights" not in state:
            raise ValueError(f"{run} has no checkpoint to take the last weights from")
        weights_file = run / "checkpoint" / state["weights"]
    else:
        weights_file = Path(weights)
    if not weights_file.is_file():
        raise FileNotFoundError(f"{weights_file} not found")
    model = build(cfg.arch)
    model.load_weights(weights_file)
    valid_file = valid if valid is not None else cfg.valid
    valid_set = load_faces(valid_file) if valid_file else None
    classes = valid_set.classes if valid_set is not None else load_faces(cfg.train).classes
    return FinishedRun(run, cfg, state, model, classes,
                       to_input(valid_set.preprocessed()) if valid_set is not None else None,
                       valid_set.labels if valid_set is not None else None)


def history_seconds(state: dict) -> float:
    """Training seconds recorded in a run's state (sum of its epochs)."""
    return round(sum(row.get("seconds", 0.0) for row in state.get("history", [])), 1)


def recipe(cfg: TrainConfig) -> dict:
    """A run's config as published in reports and model metadata: data files by name
    only, since their paths belong to the machine that trained."""
    return dict(dataclasses.asdict(cfg), train=Path(cfg.train).name,
                valid=Path(cfg.valid).name if cfg.valid else "",
                reframed=", ".join(f"{Path(f).parent.name}/{Path(f).name}" for f in cfg.reframed))


def describe_recipe(r: dict) -> str:
    """A run's recipe (``recipe()``, or the config it came from) in words, for the training
    report and the model card. Settings added after older runs were recorded read as
    their defaults, which is what those runs used."""
    d = TrainConfig()
    mixing = f", CutMix {r['cutmix']}" if r.get("cutmix", d.cutmix) else ""
    if r.get("camera", d.camera):
        mixing += f", camera degradations on {r['camera']} of the faces"
    if r.get("reframed_share", d.reframed_share):
        mixing += f", {r['reframed_share']} of the faces re-framed as the device frames them (`{r['reframed']}`)"
    return (f"SGD with Nesterov momentum {r['momentum']}, learning rate {r['lr']} (warm-up "
            f"{r['warmup_epochs']} epoch, cosine decay), weight decay {r['weight_decay']}, batch {r['batch']}, "
            f"label smoothing {r['label_smoothing']}, `{r['class_weight']}` class weights, dropout "
            f"{r.get('dropout', d.dropout)}, random erasing {r.get('erase_prob', d.erase_prob)}{mixing}, "
            f"seed {r['seed']}")


def lineage(cfg: TrainConfig) -> list[dict]:
    """The runs a warm-started run grew from, oldest first, each with its recipe,
    epochs and training seconds, so an export can state the whole cost and recipe.

    ``init_weights`` names a weights file; when that file sits in a run folder
    the folder's config and checkpoint state are read (and its own parents, as
    ``run_lineage`` finds them); beside weights rebuilt from a shipped model by
    ``tools.recover``, the history recorded in that model. A weights file from
    elsewhere is recorded by name only.
    """
    if not cfg.init_weights:
        return []
    folder = Path(cfg.init_weights).parent
    if (folder / LINEAGE_FILE).is_file():
        return json.loads((folder / LINEAGE_FILE).read_text())
    config_file, state_file = folder / "config.json", folder / "checkpoint" / "state.json"
    if not (config_file.is_file() and state_file.is_file()):
        return [{"weights": cfg.init_weights}]
    parent = TrainConfig.from_json(config_file)
    state = json.loads(state_file.read_text())
    return run_lineage(folder, parent) + [{
        "weights": cfg.init_weights,
        "epochs_run": int(state.get("epoch", 0)),
        "best_epoch": int(state.get("best_epoch", 0)),
        "seconds": history_seconds(state),
        "recipe": recipe(parent),
    }]


def run_lineage(run: Path, cfg: TrainConfig) -> list[dict]:
    """The lineage of the run in ``run``: as recorded in its folder when it started,
    which outlives the parents' folders and travels with the run (a SageMaker job's
    output holds the folder, not its warm start), else as ``lineage`` finds it now."""
    recorded = run / WARM_START_FILE
    if recorded.is_file():
        return json.loads(recorded.read_text())
    return lineage(cfg)


def prepare_run(run: Path, cfg: TrainConfig | None, resume: bool) -> TrainConfig:
    """Create or reopen a run folder; the config is frozen at the first start."""
    config_file = run / "config.json"
    if resume:
        if not config_file.is_file():
            raise SystemExit(f"error: {run} has no run to resume (no config.json)")
        return TrainConfig.from_json(config_file)
    if (run / "checkpoint" / "state.json").exists():
        raise SystemExit(f"error: {run} already holds a run; use --resume or another --run")
    run.mkdir(parents=True, exist_ok=True)
    write_atomic(config_file, json.dumps(dataclasses.asdict(cfg), indent=1).encode())
    if cfg.init_weights:
        write_atomic(run / WARM_START_FILE, json.dumps(lineage(cfg), indent=1).encode())
    return cfg


def run_training(cfg: TrainConfig, run: Path, resume: bool = False, log=print,
                 stop_after: int | None = None) -> "Trainer":
    train = load_faces(cfg.train)
    valid = load_faces(cfg.valid) if cfg.valid else None
    if valid is not None and valid.classes != train.classes:
        raise SystemExit(f"error: valid classes {valid.classes} differ from train {train.classes}")
    trainer = Trainer(cfg, run, train, valid)
    if resume and trainer.restore():
        log(f"resumed {run} at epoch {trainer.state['epoch']} of {cfg.epochs}")
    trainer.fit(log, stop_after)
    trainer.model.load_weights(run / "best.weights.h5")
    return trainer


def measure(archs: list[str], cfg: TrainConfig, steps: int = 20) -> None:
    """Seconds per training epoch of each candidate, timed on ``steps`` real steps."""
    import tensorflow as tf  # noqa: F401  (fail early if the train extra is missing)

    from models.architectures import build, count_macs

    train = load_faces(cfg.train)
    n_train = len(train)
    small = FaceSet(train.images[: cfg.batch * (steps + 3)], train.labels[: cfg.batch * (steps + 3)], train.classes)
    for arch in archs:
        c = dataclasses.replace(cfg, arch=arch, epochs=1)
        t = Trainer(c, Path("/nonexistent"), small, None)
        batches = t.epoch_batches(1)
        for _ in range(3):
            t.train_step(*next(batches))
        start = time.monotonic()
        for _ in range(steps):
            t.train_step(*next(batches))
        per_step = (time.monotonic() - start) / steps
        model = build(arch)
        print(f"measure {arch} params {model.count_params()} macs {count_macs(model)} "
              f"s/step {per_step:.3f} s/epoch {per_step * n_train / cfg.batch:.0f}", flush=True)


def config_defaults(argv: list[str] | None) -> TrainConfig:
    """The ``--config FILE`` (e.g. another run's ``config.json``) as defaults that flags override."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", type=Path)
    path = pre.parse_known_args(argv)[0].config
    if path is None:
        return TrainConfig()
    try:
        return TrainConfig.from_json(path)
    except (OSError, ValueError, TypeError) as exc:
        raise SystemExit(f"error: {path}: not a training config ({exc})") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = config_defaults(argv)
    p = argparse.ArgumentParser(prog="facecue-train", description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, help="JSON config (e.g. another run's config.json) giving the defaults")
    p.add_argument("--run", type=Path, default=Path("runs/final"), help="run folder (checkpoints, report)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run from its last epoch")
    p.add_argument("--measure", nargs="+", metavar="ARCH", help="time training steps of these archs and exit")
    p.add_argument("--arch", default=d.arch)
    p.add_argument("--train", default=d.train or str(shared_split("train") or ""), help="training npz")
    p.add_argument("--valid", default=d.valid or str(shared_split("valid") or ""), help="validation npz")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--momentum", type=float, default=d.momentum)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    p.add_argument("--class-weight", choices=("none", "sqrt", "balanced"), default=d.class_weight)
    p.add_argument("--dropout", type=float, default=d.dropout, help="dropout before the classifier")
    p.add_argument("--erase-prob", type=float, default=d.erase_prob, help="share of faces randomly erased")
    p.add_argument("--cutmix", type=float, default=d.cutmix,
                   help="share of faces given a box from another face, labels mixed by area (0: off)")
    p.add_argument("--camera", type=float, default=d.camera,
                   help="share of faces degraded as a hat camera would: far (down- and up-sampled), blur, "
                        "gamma, noise, JPEG")
    p.add_argument("--reframed", nargs="+", default=d.reframed, metavar="FILE",
                   help="the training faces re-framed by tools.align_faces, mixed in by --reframed-share; "
                        "several renders: each re-framed face is drawn from one of them at random")
    p.add_argument("--reframed-share", type=float, default=d.reframed_share,
                   help="share of faces taken from --reframed in each batch (0: off)")
    p.add_argument("--init-weights", default=d.init_weights,
                   help="start from these weights (same arch), e.g. runs/final/best.weights.h5")
    p.add_argument("--limit", type=int, default=d.limit, help="train on a random N faces only")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--keep-from", type=int, default=d.keep_from, metavar="EPOCH",
                   help="keep every epoch's weights from EPOCH on in RUN/epochs/, for tools.export --average")
    p.add_argument("--no-report", action="store_true", help="skip curves/confusion/report files")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:
        from tools.recipe import main as run_recipe  # tools.recipe builds on this module

        return run_recipe(argv[1:])
    args = parse_args(argv)
    cfg = TrainConfig.from_args(args)
    for flag, share in (("--erase-prob", cfg.erase_prob), ("--cutmix", cfg.cutmix), ("--camera", cfg.camera),
                        ("--reframed-share", cfg.reframed_share)):
        if not 0.0 <= share <= 1.0:
            raise SystemExit(f"error: {flag} {share}: a share of faces, between 0 and 1")
    if cfg.keep_from < 0:
        raise SystemExit(f"error: --keep-from {cfg.keep_from}: an epoch number, or 0 to keep none")
    if cfg.init_weights and not Path(cfg.init_weights).is_file():
        raise SystemExit(f"error: --init-weights {cfg.init_weights}: no such file")
    if not cfg.train:
        raise SystemExit("error: no training data; pass --train FILE.npz")
    if bool(cfg.reframed) != bool(cfg.reframed_share):
        raise SystemExit("error: --reframed and --reframed-share go together: the files and the share they give")
    if cfg.reframed:
        try:
            reframed_faces(cfg, load_faces(cfg.train))  # before a run folder is made
        except DatasetError as exc:
            raise SystemExit(f"error: --train: {exc}") from None
    if args.measure:
        measure(args.measure, cfg)
        return 0
    cfg = prepare_run(args.run, cfg, args.resume)
    trainer = run_training(cfg, args.run, args.resume)
    if not args.no_report:
        from tools.report import write_training_report

        write_training_report(trainer, args.run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
