"""``facecue-model compare-runs``: does an emulated run say what this host's run says?

    facecue-model compare-runs --eval X86.eval ARM64.eval --log X86.log ARM64.log
                               [--audio X86.wav ARM64.wav] [--fps 4] [--confidence 0.05] [--points 1.0]

``tools/emulate.sh pi`` records, on this x86-64 host and in an arm64 root under
qemu, the ``facecue-model eval`` table (without its first line, which names the
model's path) and the ``announce``/``hedge`` lines of ``facecue run
--audio-out`` (without their log prefix). This says which differences are real:

must match exactly
    the words (``announce happy``, ``hedge sad``) and their order; every line of
    the eval table except the rows by top probability: per-class recall counts,
    the confusion matrix (the predicted label of every face, counted by class)
    and the accuracy line.
may differ, within a tolerance
    a word's confidence by ``--confidence`` (absolute); its time by one frame
    (``1 / --fps`` seconds); the faces and accuracy columns of the rows by top
    probability by ``--points`` percentage points. The audio, compared byte for
    byte only where every word falls at the same time, else not compared.

The tolerance exists because the int8 classifier is not bit-exact across the
two machines; docs/platforms.md says where they likely part, and its sources.

Exit status 0 when everything matches within tolerance, 1 for a real
difference or an input it cannot read (then one ``facecue: error:`` line
instead), 2 for a usage error: facecue's one rule (:mod:`device.argparser`).
One line per difference, the real ones marked ``differs:``, then one summary line.
"""
from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from device.argparser import RUNTIME, Parser

PROG = "facecue-model compare-runs"
WITHIN, DIFFERS = "within tolerance:", "differs:"

# `facecue-model eval`'s rows by top probability: ">= 0.80      43.7%   0.9084"
CONFIDENCE_ROW = re.compile(r"^>= (?P<at>\d\.\d\d)\s+(?P<faces>\d+\.\d)%\s+(?P<accuracy>\d\.\d{4})$")
# device.announce's lines, as emulate.sh keeps them: "announce happy confidence 0.80 t 17.00s"
WORD_LINE = re.compile(r"^(?P<kind>announce|hedge) (?P<label>\S+) confidence (?P<confidence>\d+\.\d+) "
                       r"t (?P<t>\d+\.\d+)s(?: \(muted\))?$")


class InputError(Exception):
    """A file that is missing or not what emulate.sh records: one line naming it."""


@dataclass(frozen=True)
class Tolerance:
    """How far a float may move between the two machines before it counts as a difference."""

    confidence: float  # absolute, of a spoken word's smoothed probability
    seconds: float  # of a word's time: one frame
    points: float  # percentage points, of the eval table's rows by top probability


@dataclass(frozen=True)
class Word:
    """One spoken word of the announcement log."""

    kind: str  # announce or hedge: a hedged word is another sound
    label: str
    confidence: float
    t: float

    @property
    def said(self) -> str:
        return f"{self.kind} {self.label}"


def read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc


def read_words(path: Path) -> list[Word]:
    """The announcement log; any other line means the wrong file or a changed log format."""
    words = []
    for number, line in enumerate(read_lines(path), 1):
        match = WORD_LINE.match(line)
        if match is None:
            raise InputError(f"{path} line {number} is not an announcement line: {line[:80]!r}")
        words.append(Word(match["kind"], match["label"], float(match["confidence"]), float(match["t"])))
    return words


def compare_eval(host: list[str], emulated: list[str], tolerance: Tolerance) -> Iterator[str]:
    """The eval tables: the same lines, but for the rows by top probability, which the
    confidences decide (a face just over a threshold here may be just under it there)."""
    if len(host) != len(emulated):
        yield f"{DIFFERS} eval table: {len(host)} lines here, {len(emulated)} emulated"
        return
    for number, (ours, theirs) in enumerate(zip(host, emulated, strict=True), 1):
        if ours == theirs:
            continue
        a, b = CONFIDENCE_ROW.match(ours), CONFIDENCE_ROW.match(theirs)
        if a is None or b is None or a["at"] != b["at"]:
            yield f"{DIFFERS} eval line {number}: {ours.strip()!r} here, {theirs.strip()!r} emulated"
            continue
        for column, scale, unit in (("faces", 1.0, "%"), ("accuracy", 100.0, "")):
            gap = abs(float(a[column]) - float(b[column])) * scale
            if a[column] != b[column]:
                verdict = WITHIN if gap <= tolerance.points + 1e-9 else DIFFERS
                yield (f"{verdict} eval >= {a['at']} {column}: {a[column]}{unit} here, {b[column]}{unit} "
                       f"emulated ({gap:.2f} points; {tolerance.points:g} allowed)")


def compare_words(host: list[Word], emulated: list[Word], tolerance: Tolerance) -> Iterator[str]:
    """The same words in the same order; then each word's confidence and time within tolerance."""
    said_here, said_there = [w.said for w in host], [w.said for w in emulated]
    if said_here != said_there:
        if sorted(said_here) == sorted(said_there):
            yield f"{DIFFERS} word order: {', '.join(said_here)} here; {', '.join(said_there)} emulated"
            return
        matcher = difflib.SequenceMatcher(a=said_here, b=said_there, autojunk=False)
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            if op != "equal":
                here = ", ".join(f"{w.said} at {w.t:.2f}s" for w in host[i1:i2]) or "nothing"
                there = ", ".join(f"{w.said} at {w.t:.2f}s" for w in emulated[j1:j2]) or "nothing"
                yield f"{DIFFERS} word {i1 + 1}: {here} here, {there} emulated"
        return
    for number, (ours, theirs) in enumerate(zip(host, emulated, strict=True), 1):
        for what, a, b, allowed, unit in (
                ("confidence", ours.confidence, theirs.confidence, tolerance.confidence, ""),
                ("time", ours.t, theirs.t, tolerance.seconds, "s")):
            if a != b:
                verdict = WITHIN if abs(a - b) <= allowed + 1e-9 else DIFFERS
                yield (f"{verdict} word {number} ({ours.said}) {what}: {a:.2f}{unit} here, {b:.2f}{unit} "
                       f"emulated ({allowed:g}{unit} allowed)")


def compare_audio(host: Path, emulated: Path, same_times: bool) -> Iterator[str]:
    """The same bytes, where the words fall at the same times: the audio is the words on
    the frame timeline, so it can only match when their times do."""
    if not same_times:
        yield f"{WITHIN} audio not compared: the words fall at other times"
        return
    try:
        same = host.read_bytes() == emulated.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    if not same:
        yield f"{DIFFERS} audio: {host} and {emulated} differ although the words fall at the same times"


def differences(args: argparse.Namespace) -> list[str]:
    """Every difference found, in the order eval table, words, audio."""
    tolerance = Tolerance(args.confidence, 1.0 / args.fps, args.points)
    found: list[str] = []
    if args.eval:
        found += compare_eval(*(read_lines(p) for p in args.eval), tolerance)
    if args.log:
        host, emulated = (read_words(p) for p in args.log)
        found += compare_words(host, emulated, tolerance)
        if args.audio:
            same_times = [w.t for w in host] == [w.t for w in emulated]
            found += compare_audio(*args.audio, same_times)
    return found


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = Parser(prog=PROG, description=__doc__.splitlines()[0],
               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--eval", nargs=2, type=Path, metavar=("HOST", "EMULATED"),
                   help="the two `facecue-model eval` tables, without their first line")
    p.add_argument("--log", nargs=2, type=Path, metavar=("HOST", "EMULATED"),
                   help="the two logs of announce/hedge lines, without their log prefix")
    p.add_argument("--audio", nargs=2, type=Path, metavar=("HOST", "EMULATED"),
                   help="the two --audio-out WAVs (needs --log: compared only where the times match)")
    p.add_argument("--fps", type=float, default=4.0, help="the video's frame rate: a word may move one frame")
    p.add_argument("--confidence", type=float, default=0.05, help="how far a word's confidence may move")
    p.add_argument("--points", type=float, default=1.0,
                   help="how many percentage points a row by top probability may move")
    args = p.parse_args(argv)
    if not (args.eval or args.log):
        p.error("nothing to compare: give --eval, --log or both")
    if args.audio and not args.log:
        p.error("--audio needs --log: the audio is compared only where the words' times match")
    if args.fps <= 0 or args.confidence < 0 or args.points < 0:
        p.error("--fps must be above 0, --confidence and --points at least 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    found = differences(args)
    for line in found:
        print(line)
    real = sum(line.startswith(DIFFERS) for line in found)
    if real:
        print(f"{real} real difference{'s' if real != 1 else ''} from this host's run")
        return RUNTIME
    print(f"the same within tolerance ({len(found)} difference{'s' if len(found) != 1 else ''} allowed)")
    return 0
