"""facecue-model train: train a run (``facecue-model run RECIPE`` runs a whole recipe).

    facecue-model train --run runs/final --arch vgg_elu-small --epochs 40
    facecue-model train --run runs/final --resume          # after a stop
    facecue-model train --measure vgg_elu-tiny vgg_elu-small vgg_elu-base
"""
from __future__ import annotations

import argparse
from pathlib import Path

from device.argparser import Parser
from tools.data.dataset import load_faces, shared_split
from tools.train.fit import measure, reframed_faces, run_training
from tools.train.report import write_training_report
from tools.train.runs import TrainConfig, TrainError, prepare_run


def config_defaults(argv: list[str] | None) -> TrainConfig:
    """The ``--config FILE`` (e.g. another run's ``config.json``) as defaults that flags override."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", type=Path)
    path = pre.parse_known_args(argv)[0].config
    if path is None:
        return TrainConfig()
    try:
        return TrainConfig.from_json(path)
    except (ValueError, TypeError) as exc:  # a missing one is an OSError: a run-time failure
        raise TrainError(f"{path}: not a training config ({exc})") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = config_defaults(argv)
    p = Parser(prog="facecue-model train", description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, help="JSON config (e.g. another run's config.json) giving the defaults")
    p.add_argument("--run", type=Path, default=Path("runs/final"), help="run folder (checkpoints, report)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run from its last epoch")
    p.add_argument("--measure", nargs="+", metavar="ARCH", help="time training steps of these archs and exit")
    p.add_argument("--arch", default=d.arch, help="network size (models/architectures.py), e.g. vgg_elu-base")
    p.add_argument("--train", default=d.train or str(shared_split("train") or ""), help="training npz")
    p.add_argument("--valid", default=d.valid or str(shared_split("valid") or ""), help="validation npz")
    p.add_argument("--epochs", type=int, default=d.epochs, help="length of the cosine schedule, in epochs")
    p.add_argument("--batch", type=int, default=d.batch, help="faces per training step")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate, after the warm-up")
    p.add_argument("--momentum", type=float, default=d.momentum, help="SGD Nesterov momentum")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="L2 weight decay")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing,
                   help="share of each target spread over the other classes")
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs,
                   help="epochs the learning rate rises from a tenth to --lr")
    p.add_argument("--class-weight", choices=("none", "sqrt", "balanced"), default=d.class_weight,
                   help="loss weight of rare classes: none, inverse square-root frequency, inverse frequency")
    p.add_argument("--dropout", type=float, default=d.dropout, help="dropout before the classifier")
    p.add_argument("--erase-prob", type=float, default=d.erase_prob, help="share of faces randomly erased")
    p.add_argument("--cutmix", type=float, default=d.cutmix,
                   help="share of faces given a box from another face, labels mixed by area (0: off)")
    p.add_argument("--reframed", nargs="+", default=d.reframed, metavar="FILE",
                   help="the training faces re-framed by tools.data.align_faces, mixed in by --reframed-share; "
                        "several renders: each re-framed face is drawn from one of them at random")
    p.add_argument("--reframed-share", type=float, default=d.reframed_share,
                   help="share of faces taken from --reframed in each batch (0: off)")
    p.add_argument("--votes", default=d.votes,
                   help="FER+ votes npz for the --train rows: train on vote shares (tools.data.ferplus)")
    p.add_argument("--original-share", type=float, default=d.original_share,
                   help="share of each voted face's target given to its FER2013 label (with --votes)")
    p.add_argument("--valid-votes", default=d.valid_votes,
                   help="FER+ votes npz for the --valid rows: pick the best epoch by their majority")
    p.add_argument("--init-weights", default=d.init_weights,
                   help="start from these weights (same arch), e.g. runs/final/best.weights.h5")
    p.add_argument("--limit", type=int, default=d.limit, help="train on a random N faces only")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the weights, batches and augmentation")
    p.add_argument("--threads", type=int, default=d.threads, help="TensorFlow threads (0: all cores)")
    p.add_argument("--keep-from", type=int, default=d.keep_from, metavar="EPOCH",
                   help="keep every epoch's weights from EPOCH on in RUN/epochs/, for tools.train.export --average")
    p.add_argument("--no-report", action="store_true", help="skip curves/confusion/report files")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = TrainConfig.from_args(args)
    cfg.check()
    if cfg.reframed:
        reframed_faces(cfg, load_faces(cfg.train))  # refused before a run folder is made
    if args.measure:
        measure(args.measure, cfg)
        return 0
    cfg = prepare_run(args.run, cfg, args.resume)
    trainer = run_training(cfg, args.run, args.resume)
    if not args.no_report:
        write_training_report(trainer, args.run)
    return 0
