"""Generate the committed voice clips audio/clips/<lang>/<key>.wav with espeak-ng.

Usage: ``python tools/make_voice_clips.py [--languages en id] [--out DIR] [--check]``

Every clip goes through the same steps as runtime speech (resample to
16 kHz, trim, loudness-match), so the result depends only on the phrase
table in :mod:`audio.phrases` and the espeak-ng version, which is recorded
in ``espeak-version.txt``: the same version gives the same bytes. Files are
written atomically, unchanged ones are left alone, and clips no longer in
the table are removed. ``--check`` writes nothing and exits 1 when the
committed clips differ from what would be generated.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audio import CLIPS_DIR
from audio.espeak import espeak_version, speak
from audio.phrases import LABEL_SPEED, PERSON_WORDS, PHRASES, STATUS_SPEED, STATUS_WORDS
from audio.wavfile import wav_bytes
from core.files import write_atomic
from device.argparser import Parser

VERSION_FILE = "espeak-version.txt"


def render_language(language: str) -> dict[str, bytes]:
    """WAV bytes of every clip of ``language``, keyed by file name."""
    out = {}
    for key, text in PHRASES[language].items():
        speed = STATUS_SPEED if key in STATUS_WORDS + PERSON_WORDS else LABEL_SPEED
        out[f"{key}.wav"] = wav_bytes(speak(text, language, speed))
    return out


def sync_folder(folder: Path, files: dict[str, bytes], check: bool) -> list[str]:
    """Make ``folder``'s WAVs equal ``files``; returns what differed (or changed)."""
    differing = [name for name, data in files.items()
                 if not (folder / name).is_file() or (folder / name).read_bytes() != data]
    stale = sorted(p.name for p in folder.glob("*.wav") if p.name not in files) if folder.is_dir() else []
    if not check:
        folder.mkdir(parents=True, exist_ok=True)
        for name in differing:
            write_atomic(folder / name, files[name])
        for name in stale:
            (folder / name).unlink()
    return differing + [f"{name} (stale)" for name in stale]


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="facecue-model voice-clips", description=__doc__.splitlines()[0])
    parser.add_argument("--languages", nargs="+", default=sorted(PHRASES), help="languages to make")
    parser.add_argument("--out", type=Path, default=CLIPS_DIR, help=f"clips folder (default {CLIPS_DIR})")
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on any difference")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.languages) - PHRASES.keys())
    if unknown:
        parser.error(f"unknown language(s) {', '.join(unknown)}; available: {', '.join(sorted(PHRASES))}")
    version = espeak_version()
    rendered = {lang: render_language(lang) for lang in args.languages}
    recorded = args.out / VERSION_FILE
    if version_changed := recorded.is_file() and recorded.read_text().strip() != version:
        print(f"make_voice_clips: clips were made with {recorded.read_text().strip()!r}, "
              f"this is {version!r}: bytes may differ", file=sys.stderr)
    changed = 0
    for lang, files in rendered.items():
        diff = sync_folder(args.out / lang, files, args.check)
        changed += len(diff)
        size = sum(len(b) for b in files.values())
        print(f"{lang}: {len(files)} clips, {size / 1024:.0f} KiB, "
              f"{'differ' if args.check else 'changed'}: {', '.join(diff) or 'none'}")
    if not args.check and (version_changed or not recorded.is_file()):
        write_atomic(recorded, (version + "\n").encode())
    return 1 if args.check and changed else 0
