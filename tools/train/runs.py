"""A training run's folder and records: its config, checkpoint state, lineage
and recipe, read back for resume, reports, export and the model card.

Kept apart from the trainer so that reading a run needs no training code, and
every tool that reports on runs can import this without importing the trainer.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.files import write_atomic
from tools.data.augment import to_input
from tools.data.dataset import load_faces


class TrainError(ValueError):
    """A training setting or run folder that cannot be used, in one line: the person
    asked wrongly (exit 2); a missing or unusable data file is a run-time failure."""


# A warm-started run's history (``lineage``), written into its folder at its first start.
WARM_START_FILE = "warm_start.json"
# The history of a weights file that is not in a run folder (rebuilt by tools.train.recover,
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
    # The training faces again, re-framed by tools.data.align_faces (same order and labels);
    # several renders of them give each re-framed face a different scene each time.
    reframed: tuple[str, ...] = ()
    reframed_share: float = 0.0  # share of faces drawn from ``reframed`` in each batch
    # FER+ votes (tools.data.ferplus) for the training rows: train on vote shares, not FER2013 labels.
    votes: str = ""
    original_share: float = 0.0  # share of each voted face's target given to its FER2013 label
    valid_votes: str = ""  # FER+ votes for the validation rows: pick the best epoch by their majority
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
        quant_aware, camera) are left out, since the trainer no longer has them."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in json.loads(path.read_text()).items() if k in known})

    @classmethod
    def from_args(cls, args: argparse.Namespace, skip: tuple[str, ...] = ()) -> "TrainConfig":
        """The config a command line asked for: one flag per field, so a new field needs no
        hand-kept list; ``skip`` leaves fields at their defaults (flags meaning something else there)."""
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if f.name not in skip})

    def check(self) -> None:
        """Refuse, in one line naming the flag, settings no run can use; before any folder is made."""
        self.check_settings()
        if self.init_weights and not Path(self.init_weights).is_file():
            raise FileNotFoundError(f"--init-weights {self.init_weights}: no such file")
        if not self.train:
            raise TrainError("no training data; pass --train FILE.npz")
        for flag, path in (("--votes", self.votes), ("--valid-votes", self.valid_votes)):
            if path and not Path(path).is_file():
                raise FileNotFoundError(f"{flag} {path}: no such file")

    def check_settings(self) -> None:
        """The part of :meth:`check` that needs none of the files, so a machine that only
        sends a run elsewhere (``tools.cloud.sagemaker``) refuses the same settings."""
        for flag, share in (("--erase-prob", self.erase_prob), ("--cutmix", self.cutmix),
                            ("--reframed-share", self.reframed_share), ("--original-share", self.original_share)):
            if not 0.0 <= share <= 1.0:
                raise TrainError(f"{flag} {share}: a share of faces, between 0 and 1")
        for flag, count, least in (("--epochs", self.epochs, 1), ("--batch", self.batch, 1),
                                   ("--limit", self.limit, 0), ("--threads", self.threads, 0)):
            if count < least:  # 0 epochs would train nothing and fail only at the report
                raise TrainError(f"{flag} {count}: at least {least}")
        if self.keep_from < 0:
            raise TrainError(f"--keep-from {self.keep_from}: an epoch number, or 0 to keep none")
        if self.original_share and not self.votes:
            raise TrainError("--original-share mixes FER2013 labels into FER+ votes; it needs --votes")
        if bool(self.reframed) != bool(self.reframed_share):
            raise TrainError("--reframed and --reframed-share go together: the files and the share they give")




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
                votes=f"ferplus/{Path(cfg.votes).name}" if cfg.votes else "",
                valid_votes=f"ferplus/{Path(cfg.valid_votes).name}" if cfg.valid_votes else "",
                reframed=", ".join(f"{Path(f).parent.name}/{Path(f).name}" for f in cfg.reframed))


def describe_recipe(r: dict) -> str:
    """A run's recipe (``recipe()``, or the config it came from) in words, for the training
    report and the model card. Settings added after older runs were recorded read as
    their defaults, which is what those runs used."""
    d = TrainConfig()
    mixing = f", CutMix {r['cutmix']}" if r.get("cutmix", d.cutmix) else ""
    if r.get("reframed_share", d.reframed_share):
        mixing += f", {r['reframed_share']} of the faces re-framed as the device frames them (`{r['reframed']}`)"
    labels = "FER2013 labels"
    if r.get("votes"):
        labels = "FER+ vote shares" + (f" mixed with {r['original_share']} of the FER2013 label"
                                       if r.get("original_share") else "")
    return (f"{labels}; SGD with Nesterov momentum {r['momentum']}, learning rate {r['lr']} (warm-up "
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
    ``tools.train.recover``, the history recorded in that model. A weights file from
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
            raise TrainError(f"{run} has no run to resume (no config.json)")
        return TrainConfig.from_json(config_file)
    if (run / "checkpoint" / "state.json").exists():
        raise TrainError(f"{run} already holds a run; use --resume or another --run")
    run.mkdir(parents=True, exist_ok=True)
    write_atomic(config_file, json.dumps(dataclasses.asdict(cfg), indent=1).encode())
    if cfg.init_weights:
        write_atomic(run / WARM_START_FILE, json.dumps(lineage(cfg), indent=1).encode())
    return cfg


