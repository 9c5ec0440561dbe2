"""Random search over learning rate, momentum, weight decay and epochs (the seed study's search).

    python -m tools.search --dir runs/search --budget 12 --limit 6000
    python -m tools.search --dir runs/search --budget 2h --limit 6000     # a time budget
    python -m tools.train --config runs/search/best.json --run runs/final --epochs 32

Each trial is a short ``Trainer`` run in ``DIR/trialNNN`` on the first
``--limit`` training faces, scored by its best validation accuracy. Trial
``k``'s hyper-parameters depend only on (``--seed``, ``k``), so a search that
is stopped and started again with the same flags skips the trials already
in ``search.jsonl``, resumes the one that was cut off from its checkpoint,
and draws the same new ones. ``best.json`` is a full training config (with
the subset limit removed) that ``tools.train --config`` accepts.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tools.dataset import DatasetError, shared_split
from tools.train import TrainConfig, prepare_run, run_training, write_atomic


@dataclass(frozen=True)
class SearchSpace:
    """Ranges the seed's search covered; log-uniform where the scale matters."""

    lr: tuple[float, float] = (0.005, 0.1)
    momentum: tuple[float, float] = (0.8, 0.95)
    weight_decay: tuple[float, float] = (1e-5, 2e-3)
    epochs: tuple[int, ...] = (4, 6, 8)


@dataclass(frozen=True)
class Budget:
    """Stop after ``trials`` trials, or once ``seconds`` have passed (whichever is set)."""

    trials: int | None = None
    seconds: float | None = None

    @classmethod
    def parse(cls, text: str) -> "Budget":
        """``12`` = 12 trials; ``90s``, ``30m``, ``2h`` = wall-clock time."""
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
        if not m or float(m.group(1)) <= 0:
            raise ValueError(f"budget must be a trial count (12) or a time (90s, 30m, 2h), not {text!r}")
        value, unit = float(m.group(1)), m.group(2)
        if not unit:
            if not value.is_integer():
                raise ValueError(f"a trial budget must be a whole number, not {text!r}")
            return cls(trials=int(value))
        return cls(seconds=value * {"s": 1, "m": 60, "h": 3600}[unit])


def draw_trial(base: TrainConfig, space: SearchSpace, seed: int, trial: int) -> TrainConfig:
    """Trial ``trial``'s config: the same for the same (seed, trial), so reruns repeat it."""
    rng = np.random.default_rng([seed, trial])

    def log_uniform(lo: float, hi: float) -> float:
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))

    return dataclasses.replace(
        base,
        lr=round(log_uniform(*space.lr), 5),
        momentum=round(float(rng.uniform(*space.momentum)), 3),
        weight_decay=float(f"{log_uniform(*space.weight_decay):.2e}"),
        epochs=int(rng.choice(space.epochs)),
    )


def read_results(log_file: Path) -> dict[int, dict[str, Any]]:
    """Finished trials by number; a torn last line (a kill mid-write) is ignored."""
    results: dict[int, dict[str, Any]] = {}
    if log_file.is_file():
        for line in log_file.read_text().splitlines():
            try:
                row = json.loads(line)
                results[int(row["trial"])] = row
            except (ValueError, KeyError, TypeError):
                continue
    return results


def append_result(log_file: Path, row: dict[str, Any]) -> None:
    """One JSON line per trial, flushed to disk before the next trial starts."""
    with open(log_file, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def run_trial(cfg: TrainConfig, run: Path, trial: int, deadline: float | None, log) -> dict[str, Any] | None:
    """Train one trial (resuming it if a checkpoint exists); ``None`` if the
    deadline stopped it before its last epoch (it resumes next time)."""
    resume = (run / "config.json").is_file()
    cfg = prepare_run(run, cfg, resume)
    trainer = run_training(cfg, run, resume, log=lambda text: log(f"trial {trial}: {text}"), deadline=deadline)
    state = trainer.state
    if state["epoch"] < cfg.epochs:
        return None
    last = state["history"][-1]
    return {"trial": trial, "lr": cfg.lr, "momentum": cfg.momentum, "weight_decay": cfg.weight_decay,
            "epochs": cfg.epochs, "val_acc": state["best_acc"], "best_epoch": state["best_epoch"],
            "last_val_loss": last.get("val_loss"), "seconds": round(sum(r["seconds"] for r in state["history"]), 1),
            "run": run.name}


def summary_table(results: dict[int, dict[str, Any]]) -> str:
    rows = sorted(results.values(), key=lambda r: -r["val_acc"])
    lines = ["trial       lr momentum     decay epochs val_acc best_ep  seconds"]
    lines += [f"{r['trial']:>5} {r['lr']:>8.5f} {r['momentum']:>8.3f} {r['weight_decay']:>9.2e} {r['epochs']:>6} "
              f"{r['val_acc']:>7.4f} {r['best_epoch']:>7} {r['seconds']:>8.0f}" for r in rows]
    return "\n".join(lines)


def best_config(base: TrainConfig, best: dict[str, Any]) -> TrainConfig:
    """The winner as a full-data training config for ``tools.train --config``."""
    return dataclasses.replace(base, lr=best["lr"], momentum=best["momentum"],
                               weight_decay=best["weight_decay"], epochs=best["epochs"], limit=0)


def search(base: TrainConfig, folder: Path, budget: Budget, space: SearchSpace = SearchSpace(),
           seed: int = 0, log=print) -> dict[int, dict[str, Any]]:
    """Run trials until the budget is spent; returns every finished trial by number."""
    folder.mkdir(parents=True, exist_ok=True)
    log_file = folder / "search.jsonl"
    results = read_results(log_file)
    deadline = time.monotonic() + budget.seconds if budget.seconds is not None else None
    trial = 0
    while True:
        if budget.trials is not None and trial >= budget.trials:
            break
        if deadline is not None and time.monotonic() >= deadline:
            log("search: time budget spent")
            break
        if trial not in results:
            cfg = draw_trial(base, space, seed, trial)
            log(f"search: trial {trial} lr {cfg.lr} momentum {cfg.momentum} "
                f"weight_decay {cfg.weight_decay} epochs {cfg.epochs}")
            row = run_trial(cfg, folder / f"trial{trial:03d}", trial, deadline, log)
            if row is None:
                log(f"search: time budget spent during trial {trial}; it resumes on the next start")
                break
            append_result(log_file, row)
            results[trial] = row
        trial += 1
    if results:
        best = max(results.values(), key=lambda r: r["val_acc"])
        write_atomic(folder / "best.json", json.dumps(dataclasses.asdict(best_config(base, best)), indent=1).encode())
    return results


def budget_arg(text: str) -> Budget:
    """``--budget`` parser that shows argparse our own message for a bad value."""
    try:
        return Budget.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    d, s = TrainConfig(), SearchSpace()
    p = argparse.ArgumentParser(prog="python -m tools.search", description=__doc__.splitlines()[0])
    p.add_argument("--dir", type=Path, default=Path("runs/search"),
                   help="search folder (trials, search.jsonl, best.json)")
    p.add_argument("--budget", type=budget_arg, default=Budget(trials=8), help="trials (8) or time (90s, 30m, 2h)")
    p.add_argument("--limit", type=int, default=6000, help="train each trial on a random N faces")
    p.add_argument("--arch", default=d.arch)
    p.add_argument("--train", default=str(shared_split("train") or ""), help="training npz")
    p.add_argument("--valid", default=str(shared_split("valid") or ""), help="validation npz (scores the trials)")
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--lr", type=float, nargs=2, default=s.lr, metavar=("LO", "HI"))
    p.add_argument("--momentum", type=float, nargs=2, default=s.momentum, metavar=("LO", "HI"))
    p.add_argument("--weight-decay", type=float, nargs=2, default=s.weight_decay, metavar=("LO", "HI"))
    p.add_argument("--epochs", type=int, nargs="+", default=s.epochs, help="epoch counts to choose from")
    p.add_argument("--seed", type=int, default=0, help="search seed (trial draws); training seed stays fixed")
    p.add_argument("--threads", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.train or not args.valid:
        print("error: the search needs --train and --valid npz files", file=sys.stderr)
        return 2
    if min(args.epochs) < 1 or args.limit < 0:
        print("error: --epochs must be at least 1 and --limit not negative", file=sys.stderr)
        return 2
    base = TrainConfig(arch=args.arch, train=args.train, valid=args.valid, batch=args.batch,
                       limit=args.limit, threads=args.threads)
    space = SearchSpace(tuple(args.lr), tuple(args.momentum), tuple(args.weight_decay), tuple(args.epochs))
    try:
        results = search(base, args.dir, args.budget, space, args.seed)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not results:
        print("no trial finished yet")
        return 0
    print(summary_table(results))
    print(f"best config: {args.dir / 'best.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
