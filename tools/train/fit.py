"""Train the expression model on FER2013-format data, resumable epoch by epoch.

Every epoch ends with an atomic checkpoint (weights, optimizer slots, RNG
position, history), so a session that is cut off loses at most the epoch in
flight. Faces go through the device's own ``preprocess_face`` once, up front;
augmentation is NumPy/OpenCV in a worker thread beside the TensorFlow step.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from core.files import write_atomic
from tools.data.augment import AugmentParams, augment, cutmix, to_input
from tools.data.dataset import DatasetError, FaceSet, load_faces
from tools.data.ferplus import load_votes
from tools.train.runs import TrainConfig, describe_machine


def class_weights(targets: np.ndarray, mode: str) -> np.ndarray:
    """Per-class loss weights, mean 1 over the training faces' targets.

    Class sizes are the targets' mass, so soft targets (vote shares) count each
    face towards every class it was voted for. ``sqrt`` (inverse square-root
    frequency) lifts the rare ``disgust`` class (436 of 28,709) without wrecking
    the common ones the way full inverse frequency (``balanced``) does.
    """
    counts = np.maximum(targets.sum(0).astype(np.float64), 1.0)
    if mode == "none":
        w = np.ones(len(counts))
    elif mode == "sqrt":
        w = 1.0 / np.sqrt(counts)
    elif mode == "balanced":
        w = 1.0 / counts
    else:
        raise ValueError(f"class_weight must be none, sqrt or balanced, not {mode!r}")
    return (w / (targets @ w).mean()).astype(np.float32)


def training_targets(cfg: TrainConfig, train: FaceSet) -> tuple[np.ndarray, np.ndarray]:
    """Each training face's target row and which faces to train on.

    Without ``cfg.votes``: every face, its one-hot FER2013 label. With them: the
    FER+ vote shares mixed with the FER2013 label (``tools.data.ferplus``).
    CutMix blends rows later.
    """
    if not cfg.votes:
        return np.eye(len(train.classes), dtype=np.float32)[train.labels], np.ones(len(train), bool)
    try:
        votes = load_votes(cfg.votes, train.classes, len(train))
    except DatasetError as exc:
        raise DatasetError(f"--votes: {exc}") from None
    return votes.targets(train.labels, cfg.original_share)


def validation_labels(cfg: TrainConfig, valid: FaceSet) -> tuple[np.ndarray, np.ndarray]:
    """The labels a run picks its best epoch by, and which validation faces have one:
    FER+ majority votes with ``cfg.valid_votes``, else the FER2013 labels."""
    if not cfg.valid_votes:
        return valid.labels, np.ones(len(valid), bool)
    try:
        votes = load_votes(cfg.valid_votes, valid.classes, len(valid))
    except DatasetError as exc:
        raise DatasetError(f"--valid-votes: {exc}") from None
    return votes.majority, votes.usable


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
            raise DatasetError(f"--reframed: {exc}") from None
        if other.images.shape != train.images.shape or not np.array_equal(other.labels, train.labels):
            raise DatasetError(f"--reframed {path}: not the training faces re-framed "
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
        targets, keep = training_targets(cfg, train)
        self.train_x = train.preprocessed()[keep]
        self.train_targets = targets[keep]
        self.train_reframed = np.stack([r.preprocessed()[keep] for r in reframed_faces(cfg, train)]) \
            if cfg.reframed_share else None
        if cfg.limit:
            # A random subset: the data files are ordered by class, so the first N would be one class.
            subset = np.sort(np.random.default_rng(cfg.seed).permutation(len(self.train_x))[: cfg.limit])
            self.train_x, self.train_targets = self.train_x[subset], self.train_targets[subset]
            if self.train_reframed is not None:
                self.train_reframed = self.train_reframed[:, subset]
        self.valid_x = self.valid_y = self.valid_fer2013_y = None
        if valid is not None:
            labels, scored = validation_labels(cfg, valid)
            self.valid_x = to_input(valid.preprocessed()[scored])
            self.valid_y = labels[scored]
            # FER2013's own labels too when the run is picked by votes: a guard on the old labels.
            self.valid_fer2013_y = valid.labels[scored] if cfg.valid_votes else None
        self.weights = class_weights(self.train_targets, cfg.class_weight)
        self.steps = int(np.ceil(len(self.train_x) / cfg.batch))

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
        x = augment(self.framed(idx, rng), rng, self.augment_params)
        x, targets = cutmix(x, self.train_targets[idx], rng, self.cfg.cutmix)
        return x, targets, targets @ self.weights

    def epoch_batches(self, epoch: int):
        """Yield (faces, targets, weights) batches for ``epoch``, made one ahead in a worker
        thread; they depend only on (seed, epoch)."""
        rng = np.random.default_rng([self.cfg.seed, epoch])
        order = rng.permutation(len(self.train_x))
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
                if self.valid_fer2013_y is not None:
                    row["val_acc_fer2013"] = float(np.mean(probs.argmax(1) == self.valid_fer2013_y))
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


def run_training(cfg: TrainConfig, run: Path, resume: bool = False, log=print,
                 stop_after: int | None = None) -> "Trainer":
    train = load_faces(cfg.train)
    valid = load_faces(cfg.valid) if cfg.valid else None
    if valid is not None and valid.classes != train.classes:
        raise DatasetError(f"valid classes {valid.classes} differ from train {train.classes}")
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


