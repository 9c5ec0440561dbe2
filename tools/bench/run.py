"""``facecue-model bench``: Table I of the DeepLens study on this machine, the whole pipeline, a soak.

    facecue-model bench                              # table, pipeline, daemon -> bench-results/
    facecue-model bench --vgg16-weights w.weights.h5 # a trained VGG-16 baseline gets an accuracy
    facecue-model bench --video street.mp4           # the pipeline on your own 640x480 video
    facecue-model bench --soak 30                    # 30 minutes of the daemon: RSS slope, drops, errors

Prints a markdown report (machine, Table I with the paper's rows beside
ours, pipeline frames/s and per-stage ms, start-to-READY, peak RSS, the
targets of issue 5) and writes it with a JSON twin and a log-scale bar
chart to ``--out``. TensorFlow is needed only to build the VGG-16 baseline
(and a float32 twin when none is shipped); without it those rows say why
they are missing.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

from core.words import count
from device.argparser import Parser, bounded
from device.capture import CaptureError
from device.classify import ModelError
from device.config import Config, DetectConfig
from device.detect import METHODS
from models import DEFAULT_MODEL, MODELS_DIR
from tools.bench.convert import DEFAULT_CACHE
from tools.bench.daemon import DaemonError, write_loop_playlist
from tools.bench.machine import machine_info
from tools.bench.models import bench_faces
from tools.bench.pipeline import make_scene_video, run_pipeline, video_info
from tools.bench.report import render_markdown, write_outputs
from tools.bench.soak import soak
from tools.bench.table import TableBuilder, TableOptions, ratios
from tools.data.dataset import shared_split

PARTS = ("vgg16", "peer", "pipeline", "daemon")
FLOAT_TWIN = MODELS_DIR / "facecue_vgg_elu_float32.tflite"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The examples as written, and each option's default after its help: a run can take
    minutes, so what it will do unasked should be readable before it starts."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, [], False, argparse.SUPPRESS) or "default" in text:
            return text
        return f"{text} (default: %(default)s)"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = Parser(prog="facecue-model bench", description=__doc__.splitlines()[0].replace("``", ""),
               formatter_class=HelpFormatter, epilog="\n".join(__doc__.splitlines()[2:7]))
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="the modified VGG-16 int8 .tflite")
    p.add_argument("--float-model", type=Path, default=FLOAT_TWIN,
                   help="its float32 twin (built from --modified-weights, or untrained, when absent)")
    p.add_argument("--modified-weights", type=Path, help="Keras .weights.h5 for building the float32 twin")
    p.add_argument("--vgg16-weights", type=Path, help="Keras .weights.h5 of a trained VGG-16 (else untrained)")
    p.add_argument("--baseline-arch", default="vgg16", help=argparse.SUPPRESS)  # tests: a tiny stand-in
    p.add_argument("--data", type=Path, default=shared_split("valid"),
                   help="labelled faces (.npz); default ../shared/data/fer2013/valid.npz when present")
    count, positive = bounded(int, at_least=1), bounded(float, above=0)
    p.add_argument("--faces", type=count, default=50, help="faces per timing pass (Table I: 50)")
    p.add_argument("--repeats", type=count, default=5, help="timing passes; the median is reported")
    p.add_argument("--warmup", type=bounded(int, at_least=0), default=5, help="untimed invokes before timing")
    p.add_argument("--model-threads", type=count, default=1, help="interpreter threads for Table I (device default 1)")
    p.add_argument("--threads", type=count, default=os.cpu_count() or 1, help="'all threads' for the pipeline run")
    p.add_argument("--video", type=Path, help="640x480 video for the pipeline (default: composed from --data)")
    p.add_argument("--scene-seconds", type=positive, default=24.0,
                   help="length of the composed video of real faces in real scenes")
    p.add_argument("--daemon-seconds", type=positive, default=20.0, help="how long the daemon runs after READY")
    p.add_argument("--soak", type=positive, metavar="MINUTES", help="only soak the daemon this long")
    p.add_argument("--soak-every", type=positive, default=60.0, metavar="SECONDS", help="RSS sample interval")
    p.add_argument("--skip", action="append", default=[], choices=PARTS, help="leave a part out (repeatable)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where built baseline files are kept")
    p.add_argument("--out", type=Path, default=Path("bench-results"), help="folder for .md/.json/.png")
    p.add_argument("--json", type=Path, help="write the JSON here instead of OUT/bench.json")
    return p.parse_args(argv)


def scene_video(args: argparse.Namespace, folder: Path) -> tuple[Path, str]:
    """The user's ``--video``, or real faces composed into real scenes."""
    if args.video is not None:
        if not args.video.is_file():
            raise CaptureError(f"video {args.video} not found")
        return args.video, str(args.video)
    return make_scene_video(folder / "scene.avi", args.scene_seconds)


def pipeline_part(args: argparse.Namespace, video: Path, described: str) -> dict[str, Any]:
    if not args.model.is_file():
        return {"skipped": f"{args.model} not found"}
    info = video_info(video)
    runs = []
    for method in METHODS:  # the shipped detector first, then Haar, in the same run
        cfg = Config(detect=DetectConfig(method=method))
        for threads in dict.fromkeys((1, args.threads)):
            print(f"pipeline with {method} on {count(threads, 'thread')} ...", flush=True)
            runs.append(dataclasses.asdict(run_pipeline(video, args.model, threads, cfg)))
    return {"video": described, "size": [info.width, info.height],
            "runs": runs}


def daemon_part(args: argparse.Namespace, video: Path, folder: Path, seconds: float, every: float) -> dict[str, Any]:
    """``facecue run`` on the scene, looped, for ``seconds`` after READY."""
    if not args.model.is_file():
        raise ModelError(f"model {args.model} not found")
    info = video_info(video)
    playlist = write_loop_playlist(video, folder, seconds + 120.0, info.seconds)
    print(f"daemon for {seconds:.0f}s after READY ...", flush=True)
    return dataclasses.asdict(soak(folder, playlist, args.model, seconds, every, info.fps))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every part of the bench (or only the soak), as one JSON-ready dict."""
    notes: list[str] = []
    result: dict[str, Any] = {"machine": machine_info(), "notes": notes, "table": None, "ratios": None,
                              "pipeline": None, "daemon": None, "soak": None}
    sample, full = bench_faces(args.data, args.faces)
    result["settings"] = {"faces": args.faces, "faces_source": sample.source, "repeats": args.repeats,
                          "warmup": args.warmup, "model_threads": args.model_threads, "threads": args.threads,
                          "data": str(args.data) if args.data else None, "model": str(args.model)}
    with tempfile.TemporaryDirectory(prefix="facecue-bench-") as tmp:
        folder = Path(tmp)
        video, described = scene_video(args, folder)
        if args.soak is not None:
            result["soak"] = daemon_part(args, video, folder, args.soak * 60.0, args.soak_every)
            return result
        opts = TableOptions(args.model, args.float_model, args.modified_weights, args.vgg16_weights,
                            args.baseline_arch, args.cache, args.repeats, args.warmup, args.model_threads,
                            baseline="vgg16" not in args.skip, peer="peer" not in args.skip)
        builder = TableBuilder(opts, sample, full)
        rows = builder.rows()
        notes.extend(builder.notes)
        result["table"] = [dataclasses.asdict(r) for r in rows]
        result["ratios"] = ratios(rows)
        result["pipeline"] = ({"skipped": "left out (--skip pipeline)"} if "pipeline" in args.skip
                              else pipeline_part(args, video, described))
        if "daemon" in args.skip:
            result["daemon"] = {"skipped": "left out (--skip daemon)"}
        else:
            try:
                result["daemon"] = daemon_part(args, video, folder, args.daemon_seconds,
                                               max(args.daemon_seconds / 4, 1.0))
            except (DaemonError, ModelError) as exc:
                result["daemon"] = {"skipped": str(exc)}
                notes.append(f"daemon: {exc}")
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    print(render_markdown(result), flush=True)
    for line in write_outputs(result, args.out, args.json, stem="bench" if args.soak is None else "soak"):
        print(line)
    return 0
