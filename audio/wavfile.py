"""Reading and atomically writing mono 16-bit WAV files (atomically: see :mod:`core.files`)."""
from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np

from audio.sound import Sound
from core.files import write_atomic


def read_wav(path: Path) -> Sound:
    """A mono 16-bit WAV as a Sound; anything else is a one-line ValueError."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getnchannels() != 1 or w.getsampwidth() != 2:
                raise ValueError(f"{path}: need mono 16-bit WAV, got {w.getnchannels()} channel(s), "
                                 f"{8 * w.getsampwidth()}-bit")
            pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16)
            return Sound(pcm, w.getframerate())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"{path}: not a readable WAV ({exc})") from None


def wav_bytes(sound: Sound) -> bytes:
    """The complete WAV file for ``sound`` (header included)."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sound.sample_rate)
        w.writeframes(sound.pcm.astype("<i2").tobytes())
    return buf.getvalue()


def write_wav(path: Path, sound: Sound) -> None:
    """``sound`` as a WAV at ``path``, replaced whole or not at all."""
    write_atomic(path, wav_bytes(sound))
