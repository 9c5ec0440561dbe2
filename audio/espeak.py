"""espeak-ng through a subprocess: text to trimmed, loudness-matched speech.

The committed clips and the device's runtime status sentences both come
from :func:`speak`, so they share voice, speed, sample rate and loudness.
"""
from __future__ import annotations

import re
import shutil
import struct
import subprocess

import numpy as np

from audio.dsp import normalize_loudness, resample, trim_silence
from audio.phrases import ESPEAK_VOICES, STATUS_SPEED
from audio.sound import SAMPLE_RATE, Sound

ESPEAK = "espeak-ng"
TIMEOUT = 10.0  # seconds; a status sentence takes well under one


class SpeechUnavailable(RuntimeError):
    """espeak-ng is missing or failed; callers fall back to clips."""


def espeak_version(binary: str = ESPEAK) -> str:
    """The version number from ``espeak-ng --version`` (recorded with the clips)."""
    path = shutil.which(binary)
    if path is None:
        raise SpeechUnavailable(f"{binary} is not installed")
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=TIMEOUT)
    except (OSError, subprocess.SubprocessError) as exc:
        raise SpeechUnavailable(f"{binary} failed: {exc}") from None
    match = re.search(r"text-to-speech:\s*(\S+)", out.stdout)
    return match.group(1) if match else out.stdout.strip() or "unknown"


def parse_stream_wav(data: bytes) -> Sound:
    """Parse espeak-ng's ``--stdout`` WAV, whose sizes are left at 0x7fffffff
    because it streams; the samples simply run to the end of the output."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise SpeechUnavailable("espeak-ng wrote no WAV")
    pos, rate = 12, None
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = pos + 8
        if chunk == b"fmt ":
            fmt, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[body:body + 16])
            if (fmt, channels, bits) != (1, 1, 16):
                raise SpeechUnavailable(f"espeak-ng wrote format {fmt}, {channels} ch, {bits} bit")
        elif chunk == b"data":
            if rate is None:
                raise SpeechUnavailable("espeak-ng WAV has data before fmt")
            samples = data[body: body + (len(data) - body) // 2 * 2]
            return Sound(np.frombuffer(samples, "<i2").astype(np.int16), rate)
        pos = body + size + (size & 1)
    raise SpeechUnavailable("espeak-ng WAV has no data")


def synthesize(text: str, language: str, speed: int = STATUS_SPEED, binary: str = ESPEAK) -> Sound:
    """Raw espeak-ng speech for ``text`` at :data:`SAMPLE_RATE`, ``speed`` words per minute."""
    if language not in ESPEAK_VOICES:
        raise ValueError(f"no espeak-ng voice for language {language!r}; "
                         f"available: {', '.join(sorted(ESPEAK_VOICES))}")
    path = shutil.which(binary)
    if path is None:
        raise SpeechUnavailable(f"{binary} is not installed")
    try:  # text on stdin: a sentence starting with "-" must not read as an option
        out = subprocess.run([path, "-v", ESPEAK_VOICES[language], "-s", str(speed), "--stdout"],
                             input=text.encode(), capture_output=True, timeout=TIMEOUT, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise SpeechUnavailable(f"{binary} failed: {exc}") from None
    return resample(parse_stream_wav(out.stdout), SAMPLE_RATE)


def speak(text: str, language: str, speed: int = STATUS_SPEED, binary: str = ESPEAK) -> Sound:
    """Speech for ``text``, trimmed and at the common loudness."""
    sound = trim_silence(synthesize(text, language, speed, binary))
    if len(sound) == 0:
        raise SpeechUnavailable(f"{binary} produced silence for {text!r}")
    return normalize_loudness(sound)
