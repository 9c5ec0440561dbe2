"""facecue-model: the model maker's one command, from data to a published model.

    facecue-model scenes video --n 60 --out scenes.avi
    facecue-model run models/facecue_vgg_elu.recipe.toml
    facecue-model eval --data valid.npz --model M.tflite
    facecue-model publish M.tflite --to s3://BUCKET/PREFIX --key ~/facecue-signing.pem

Each subcommand (:data:`tools.commands.SUBCOMMANDS`) is a module's ``main``
that parses its own options and keeps facecue's one error line and exit-code
rule (:mod:`device.argparser`); this command is their one way in (``python -m
tools.cli`` is the same command). Nothing on the hat imports this: the device's
command is ``facecue``.
"""
from __future__ import annotations

import importlib
import sys

from device import __version__
from device.argparser import Parser
from tools.commands import NAMED, SUBCOMMANDS

PROG = "facecue-model"


def build_parser() -> Parser:
    """The command's own parser: only to list the subcommands and refuse an unknown one."""
    p = Parser(prog=PROG, description="The model maker's one command, from data to a published model.")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}", help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           help=f"one of these; {PROG} COMMAND --help for its options")
    for name, (_, text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in SUBCOMMANDS:
        build_parser().parse_args(argv)  # --help, --version, or a usage error (exit 2)
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return module.main([name, *rest] if name in NAMED else rest) or 0


if __name__ == "__main__":
    sys.exit(main())
