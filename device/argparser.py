"""facecue's one runner: its error prefix, its argparse parser and its exit-code rule.

Every facecue command (``facecue``, ``facecue-model`` and the modules they
dispatch to) ends a failure the same way, through :func:`run`: one
``facecue: error: ...`` line on stderr and an exit status by one rule.

exit 2, usage
    the person asked wrongly, on the command line or in a config file: an
    argparse error, a :class:`device.config.ConfigError`, or an option value or
    combination that cannot work (:class:`UsageError`), all known before any
    work starts. Asking again, differently, is the fix.
exit 1, run time
    the run failed: an input file missing, unreadable or not what it claims, a
    model that does not load, data errors found while working, an OSError, a
    network or S3 failure. The command was right; the world was not.

Any other exception is a bug and keeps its traceback. A subcommand only parses
and raises; the command that dispatches to it (``facecue``, ``facecue-model``)
names which of its exception types are which and runs it here. Its own module
so that the subcommands that parse their own options share it without
importing the commands that dispatch to them.
"""
from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import NoReturn

ERROR_PREFIX = "facecue: error:"  # of every facecue failure
USAGE, RUNTIME = 2, 1  # the exit statuses: asked wrongly, or failed while running

Errors = tuple[type[BaseException], ...]


class UsageError(Exception):
    """An option value or combination that cannot work, found after parsing but before
    any work (exit 2): one that argparse cannot check, as it depends on two options
    or on what a file named by another says."""


class Parser(argparse.ArgumentParser):
    """argparse with facecue's one error prefix: a usage mistake in ``facecue run``
    reads ``facecue: error: ...`` like every other failure, not ``facecue run: error:``."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(USAGE, f"{ERROR_PREFIX} {message}\n")


def bounded(kind: type[int] | type[float], *, at_least: float | None = None, above: float | None = None,
            at_most: float | None = None) -> Callable[[str], int | float]:
    """An argparse ``type``: a ``kind`` number within the bounds, or the parser's usage error.

    A count of 0 or a duration of -1 is the person asking wrongly: refused while the
    command line is parsed (exit 2, one line naming the option) rather than found at run
    time, as a traceback or exit 1, once the data is loaded. NaN and infinity are refused
    too: no bound can be checked against them.
    """
    limits = [f"{word} {bound:g}" for word, bound in (("at least", at_least), ("more than", above),
                                                      ("at most", at_most)) if bound is not None]

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not (math.isfinite(value) and (at_least is None or value >= at_least)
                and (above is None or value > above) and (at_most is None or value <= at_most)):
            raise argparse.ArgumentTypeError(f"must be {' and '.join(limits)}, got {text}")
        return value

    return parse


def one_line(exc: BaseException) -> str:
    """The error as one line: ours carry their own line, OSError gets file and reason."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def fail(message: str, status: int) -> int:
    """Say ``message`` as the one error line and give the exit status to return."""
    print(f"{ERROR_PREFIX} {message}", file=sys.stderr)
    return status


def run(action: Callable[[], int | None], usage: Callable[[], Errors], runtime: Callable[[], Errors]) -> int:
    """``action()`` under the exit-code rule: a :class:`UsageError` or ``usage()`` error
    exits 2 and a ``runtime()`` one 1, each in one line; any other exception is a bug
    and keeps its traceback. Usage is asked first: a ConfigError is also a ValueError.

    ``usage`` and ``runtime`` are called only once something failed, so that a command
    can name failures of modules it imports lazily (the camera's, which loads OpenCV)
    without importing them for ``--help``.
    """
    try:
        return action() or 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if isinstance(exc, (UsageError, *usage())):
            return fail(one_line(exc), USAGE)
        if isinstance(exc, runtime()):
            return fail(one_line(exc), RUNTIME)
        raise
