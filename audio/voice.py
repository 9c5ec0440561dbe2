"""A voice pack: what each label sounds like, in speech or earcon mode.

All sounds are loaded or generated when the pack is made, so a missing or
broken clip is reported at start-up (and by ``facecue doctor``), not when
the first face is seen.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from audio import CLIPS_DIR
from audio.compose import compose, wording
from audio.dsp import resample
from audio.earcons import earcon, face_earcon
from audio.espeak import ESPEAK, SpeechUnavailable, speak
from audio.phrases import CLIP_KEYS, EVENTS, HEDGE, PHRASES
from audio.sound import SAMPLE_RATE, Sound, with_volume
from audio.wavfile import read_wav
from core.labels import EXPRESSIONS

log = logging.getLogger(__name__)

MODES = ("speech", "earcon")
LABELS = EXPRESSIONS + EVENTS + ("face", "facing")
# A hedge ("maybe sad") is this many dB below a sure word: the level, as well as
# the word "maybe", tells the wearer the device is not sure (in earcon mode the
# level alone does).
HEDGE_DB = -8.0


def available_languages(clips_dir: Path = CLIPS_DIR) -> list[str]:
    """Languages with a phrase table and a clips folder."""
    folders = {p.name for p in clips_dir.iterdir() if p.is_dir()} if clips_dir.is_dir() else set()
    return sorted(folders & PHRASES.keys())


def load_clips(language: str, clips_dir: Path = CLIPS_DIR) -> dict[str, Sound]:
    """Every clip of ``language`` at :data:`SAMPLE_RATE`; ValueError if the language
    is unknown or a clip is missing or unreadable."""
    languages = available_languages(clips_dir)
    if language not in languages:
        raise ValueError(f"unknown language {language!r}; available: {', '.join(languages) or 'none'}")
    folder = clips_dir / language
    missing = [k for k in CLIP_KEYS if not (folder / f"{k}.wav").is_file()]
    if missing:
        raise ValueError(f"clips for {language!r} incomplete in {folder}: missing {', '.join(missing)}")
    return {k: resample(read_wav(folder / f"{k}.wav"), SAMPLE_RATE) for k in CLIP_KEYS}


class VoicePack:
    """Maps a label (expression, event, or ``"face"``) to a Sound.

    ``speech``: the language's spoken clips; ``earcon``: tone patterns.
    ``"face"`` (someone arrived) is a soft earcon in both modes.
    """

    def __init__(self, mode: str = "speech", language: str = "en", clips_dir: Path = CLIPS_DIR,
                 espeak: str = ESPEAK) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown audio mode {mode!r}; available: {', '.join(MODES)}")
        self.mode, self.language, self.espeak = mode, language, espeak
        self.clips = load_clips(language, clips_dir)
        if mode == "speech":
            self._sounds = {label: self.clips[label] for label in EXPRESSIONS + EVENTS}
        else:
            self._sounds = {label: earcon(label) for label in EXPRESSIONS + EVENTS}
        self._sounds["face"] = face_earcon("face")
        self._sounds["facing"] = face_earcon("facing")
        quieter = 10 ** (HEDGE_DB / 20)
        self._hedges = {label: Sound(with_volume(self._hedge_words(label).pcm, quieter), SAMPLE_RATE)
                        for label in EXPRESSIONS}
        self._espeak_failed = False

    def _hedge_words(self, label: str) -> Sound:
        return compose([HEDGE, label], self.clips) if self.mode == "speech" else self._sounds[label]

    def labels(self) -> tuple[str, ...]:
        return LABELS

    def sound(self, label: str) -> Sound:
        """The sound for ``label``; ValueError naming the known labels otherwise."""
        try:
            return self._sounds[label]
        except KeyError:
            raise ValueError(f"unknown label {label!r}; available: {', '.join(LABELS)}") from None

    def hedge(self, expression: str) -> Sound:
        """``expression`` said unsure: "maybe sad", :data:`HEDGE_DB` quieter than the sure word."""
        try:
            return self._hedges[expression]
        except KeyError:
            raise ValueError(f"unknown expression {expression!r}; available: {', '.join(EXPRESSIONS)}") from None

    def phrase(self, keys: Sequence[str]) -> Sound:
        """Clip ``keys`` joined into one phrase, never through espeak-ng: an answer
        that must be ready at once (the person cue) cannot wait for a subprocess."""
        return compose(keys, self.clips)

    def sentence(self, keys: Sequence[str]) -> Sound:
        """Clip ``keys`` (see :func:`audio.compose.status_keys`) spoken in the
        pack's language: by espeak-ng if it works, else composed from the
        clips, which hold every key. ValueError only for a key with no clip."""
        try:
            return speak(wording(keys, self.language), self.language, binary=self.espeak)
        except SpeechUnavailable as exc:
            if not self._espeak_failed:
                log.warning("runtime speech unavailable (%s); composing from clips", exc)
                self._espeak_failed = True
        return compose(keys, self.clips)
