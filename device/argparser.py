"""facecue's one error prefix and the argparse parser that uses it.

Its own module so that the subcommands that parse their own options (``sync``,
and the model maker's ``eval`` and ``bench``) share them without importing
``device.cli``, which dispatches to them.
"""
from __future__ import annotations

import argparse
import sys
from typing import NoReturn

ERROR_PREFIX = "facecue: error:"  # of every facecue failure


class Parser(argparse.ArgumentParser):
    """argparse with facecue's one error prefix: a usage mistake in ``facecue run``
    reads ``facecue: error: ...`` like every other failure, not ``facecue run: error:``."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{ERROR_PREFIX} {message}\n")
