"""The model maker's ``facecue`` subcommands, registered through the
``facecue.commands`` entry point group (see pyproject.toml).

The device's command never names ``tools``: it lists whatever an installed
package registers there. This module imports nothing, so that listing costs
no import of the commands themselves; each parses its own options.
"""
from __future__ import annotations

COMMANDS: dict[str, tuple[str, str]] = {
    "eval": ("tools.eval.evaluate", "accuracy of a model on an npz data set"),
    "bench": ("tools.bench.run", "speed/accuracy table beside the DeepLens study"),
}
