"""Training report of a run folder: curves, confusion matrix, JSON and Markdown.

    facecue-model report --run runs/final      # regenerate from the folder

``tools.train`` calls :func:`write_training_report` with its live trainer at
the end of a run; the command line rebuilds the same inputs from the run
folder (``config.json``, ``checkpoint/state.json``, ``best.weights.h5``), so
a report can be redrawn after a resume, a crash or a change to this module.
Figures follow the seed study: loss and accuracy, train against valid
(its Figures 3-4), and the confusion matrix with per-class recall (6-7).
"""
from __future__ import annotations

import dataclasses
import io
import json
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from core.files import write_atomic
from device.argparser import Parser
from tools.eval.metrics import Scores, score
from tools.train.runs import TrainConfig, describe_recipe, history_seconds, load_run, recorded_machine, run_lineage


class TrainedRun(Protocol):
    """What a report needs; both ``Trainer`` and ``FinishedRun`` provide it."""

    cfg: TrainConfig
    state: dict
    model: Any
    classes: tuple[str, ...]
    valid_x: np.ndarray | None
    valid_y: np.ndarray | None


def _figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    return buf.getvalue()


def plot_curves(history: list[dict], best_epoch: int) -> bytes:
    """PNG of loss and accuracy per epoch, train against valid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((axes[0], "loss", "Loss"), (axes[1], "acc", "Accuracy")):
        ax.plot(epochs, [row[key] for row in history], "o-", ms=3, label="train (augmented)")
        if all(f"val_{key}" in row for row in history):
            ax.plot(epochs, [row[f"val_{key}"] for row in history], "o-", ms=3, label="valid")
        if best_epoch:
            ax.axvline(best_epoch, color="grey", ls=":", label=f"best epoch {best_epoch}")
        ax.set(title=title, xlabel="epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    png = _figure_png(fig)
    plt.close(fig)
    return png


def plot_confusion(scores: Scores, title: str) -> bytes:
    """PNG of the row-normalised confusion matrix, each true class labelled with its recall."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = scores.confusion
    rows = np.maximum(cm.sum(axis=1, keepdims=True), 1)
    share = cm / rows
    k = len(scores.classes)
    fig, ax = plt.subplots(figsize=(1.1 * k + 2.5, 1.0 * k + 1.5))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{share[i, j]:.0%}\n{cm[i, j]}", ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.55 else "black")
    ax.set_xticks(range(k), scores.classes, rotation=45, ha="right")
    ax.set_yticks(range(k), [f"{c} (recall {r:.0%})" for c, r in zip(scores.classes, scores.recall, strict=True)])
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    png = _figure_png(fig)
    plt.close(fig)
    return png


def valid_scores(trained: TrainedRun, batch: int = 512) -> Scores | None:
    """The model's scores on the run's validation faces (``None`` if it had none)."""
    if trained.valid_x is None:
        return None
    probs = trained.model.predict(trained.valid_x, batch_size=batch, verbose=0)
    return score(trained.valid_y, probs.argmax(axis=1), trained.classes)


def report_dict(trained: TrainedRun, run_dir: Path, scores: Scores | None) -> dict[str, Any]:
    from models.architectures import count_macs

    state, history = trained.state, trained.state.get("history", [])
    return {
        "run": str(run_dir),
        "arch": trained.cfg.arch,
        "params": int(trained.model.count_params()),
        "macs": count_macs(trained.model),
        "config": dataclasses.asdict(trained.cfg),
        "epochs_run": int(state.get("epoch", len(history))),
        "best_epoch": int(state.get("best_epoch", 0)),
        "best_val_acc": float(state.get("best_acc", -1.0)),
        "train_seconds": history_seconds(state),
        "warm_start": run_lineage(run_dir, trained.cfg),
        "machine": recorded_machine(state),
        "valid": scores.to_dict() if scores is not None else None,
        "history": history,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def report_markdown(report: dict[str, Any], scores: Scores | None) -> str:
    hours = report["train_seconds"] / 3600
    lines = [
        f"# Training report: {report['run']}",
        "",
        f"- arch `{report['arch']}`: {report['params']:,} parameters, {report['macs'] / 1e6:.1f} M MACs per face",
        f"- {report['epochs_run']} of {report['config']['epochs']} epochs, {hours:.2f} h on {report['machine']}",
        *[(f"- warm-started from `{p['weights']}`"
           + (f" ({p['epochs_run']} epochs, {p['seconds'] / 3600:.2f} h)" if "seconds" in p else ""))
          for p in report["warm_start"]],
        f"- best epoch {report['best_epoch']}, valid accuracy {report['best_val_acc']:.4f}",
        f"- recipe: {describe_recipe(report['config'])}",
        "",
        "![loss and accuracy](curves.png)",
        "",
    ]
    if scores is not None:
        lines += [
            "## Validation (best weights, Keras float)",
            "",
            f"accuracy {scores.accuracy:.4f}, macro-F1 {scores.macro_f1:.4f}, n {scores.n}",
            "",
            "| class | recall | F1 | faces |",
            "|---|---|---|---|",
            *(f"| {c} | {r:.3f} | {f:.3f} | {t} |" for c, r, f, t in
              zip(scores.classes, scores.recall, scores.f1, scores.confusion.sum(axis=1), strict=True)),
            "",
            "![confusion matrix](confusion.png)",
            "",
        ]
    lines += ["## Epochs", "", "| epoch | loss | acc | val_loss | val_acc | seconds |", "|---|---|---|---|---|---|"]
    for row in report["history"]:
        cells = [f"{row[k]:.4f}" if k in row else "" for k in ("loss", "acc", "val_loss", "val_acc")]
        lines.append(f"| {row['epoch']} | " + " | ".join(cells) + f" | {row.get('seconds', '')} |")
    return "\n".join(lines) + "\n"


def write_training_report(trainer: TrainedRun, run_dir: Path) -> dict[str, Any]:
    """Write ``curves.png``, ``confusion.png``, ``report.json`` and ``report.md`` into ``run_dir``."""
    run_dir = Path(run_dir)
    scores = valid_scores(trainer)
    report = report_dict(trainer, run_dir, scores)
    write_atomic(run_dir / "curves.png", plot_curves(report["history"], report["best_epoch"]))
    if scores is not None:
        title = (f"{report['arch']} epoch {report['best_epoch']}: "
                 f"accuracy {scores.accuracy:.1%}, macro-F1 {scores.macro_f1:.3f}")
        write_atomic(run_dir / "confusion.png", plot_confusion(scores, title))
    write_atomic(run_dir / "report.json", json.dumps(report, indent=1).encode())
    write_atomic(run_dir / "report.md", report_markdown(report, scores).encode())
    return report


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="facecue-model report", description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="run folder written by tools.train")
    p.add_argument("--weights", choices=("best", "last"), default="best",
                   help="best.weights.h5, or the newest checkpoint of a run still training")
    p.add_argument("--valid", help="validation npz (default: the one in the run's config)")
    args = p.parse_args(argv)
    trained = load_run(args.run, args.weights, args.valid)
    report = write_training_report(trained, args.run)
    valid = report["valid"]
    print(f"wrote {args.run}/report.md" + (f": valid accuracy {valid['accuracy']:.4f} macro_f1 "
                                            f"{valid['macro_f1']:.4f}" if valid else ""))
    return 0
