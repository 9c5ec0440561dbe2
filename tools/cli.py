"""facecue-model: the model maker's one command, from data to a published model.

    facecue-model scenes video --n 60 --out scenes.avi
    facecue-model run models/facecue_vgg_elu.recipe.toml
    facecue-model eval --data valid.npz --model M.tflite
    facecue-model publish M.tflite --to s3://BUCKET/PREFIX --key ~/facecue-signing.pem

Each subcommand (:data:`tools.commands.SUBCOMMANDS`) is a module's ``main``
that parses its own options and then works, raising on failure; this command
is their one way in (``python -m tools.cli`` is the same command) and the one
place that ends a failure, by facecue's one error line and exit-code rule
(:mod:`device.argparser`). Nothing on the hat imports this: the device's
command is ``facecue``.
"""
from __future__ import annotations

import importlib
import sys

from device import __version__
from device.argparser import Errors, Parser, run
from tools.commands import NAMED, SUBCOMMANDS

PROG = "facecue-model"

# The subcommands' own exception types, "module:Class", by the rule of device.argparser.
# A person asked wrongly (exit 2): a config, a recipe or training settings that cannot work.
USAGE_ERRORS = ("device.config:ConfigError", "tools.train.recipe:RecipeError", "tools.train.runs:TrainError")
# The run failed (exit 1): an input, a model, a detector, a store or S3 that did not do
# what it should. OSError and ValueError too: numpy and OpenCV raise them on a bad file.
RUNTIME_ERRORS = ("builtins:OSError", "builtins:ValueError", "audio.espeak:SpeechUnavailable",
                  "device.capture:CaptureError", "device.classify:ModelError", "device.detect:DetectorError",
                  "device.manifest:ManifestError", "device.model_store:StoreError",
                  "tools.bench.daemon:DaemonError", "tools.cloud.sagemaker:JobError",
                  "tools.data.dataset:DatasetError", "tools.eval.announce:EvalError",
                  "tools.cloud.publish:S3Error", "tools.eval.compare_runs:InputError")


def build_parser() -> Parser:
    """The command's own parser: only to list the subcommands and refuse an unknown one."""
    p = Parser(prog=PROG, description="The model maker's one command, from data to a published model.")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}", help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           help=f"one of these; {PROG} COMMAND --help for its options")
    for name, (_, text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    return p


def loaded(names: tuple[str, ...]) -> Errors:
    """The classes ``names`` ("module:Class") whose module is imported already: an
    exception can only be of a class whose module was, so that classifying a failure
    imports nothing (no TensorFlow to say that a file is missing)."""
    found = []
    for name in names:
        module, _, cls = name.partition(":")
        if module in sys.modules:
            found.append(getattr(sys.modules[module], cls))
    return tuple(found)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in SUBCOMMANDS:
        build_parser().parse_args(argv)  # --help, --version, or a usage error (exit 2)
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return run(lambda: module.main([name, *rest] if name in NAMED else rest),
               lambda: loaded(USAGE_ERRORS), lambda: loaded(RUNTIME_ERRORS))


if __name__ == "__main__":
    sys.exit(main())
