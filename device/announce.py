"""From announcements and button answers to what the wearer hears and feels.

The loop hands :class:`Announcer` typed values: a
:class:`~core.frames.Expression` or :class:`~core.frames.FaceCue` from the
per-frame stages, a :class:`Notice` about the device itself. This module
owns the voice, the player (earphone or ``--audio-out`` file) and the
optional vibration motor. A missing sound card, GPIO chip or
motor is logged once and the rest keeps working: the log still says
everything the wearer would hear.
"""
from __future__ import annotations

import logging
from enum import Enum
from pathlib import Path

from audio.compose import status_keys
from audio.earcons import face_earcon
from audio.playback import PyAudioPlayer
from audio.player import Player
from audio.remote import ChildPlayer
from audio.timeline import TimelineWriter
from audio.voice import VoicePack
from core.frames import Announcement, Expression, FaceCue
from device.config import AudioConfig, Config
from device.gpio import GpioUnavailable
from device.haptics import Haptics, pattern_for
from device.people import PersonCue, cue_keys, cue_text

log = logging.getLogger("facecue")



class Notice(Enum):
    """News about the device itself; each value names its clip (``audio.phrases.EVENTS``)."""

    ERROR = "error"  # a model or detector failed; something else serves
    CAMERA_ERROR = "camera_error"
    MODEL_UPDATED = "model_updated"


def voice_for(audio: AudioConfig) -> VoicePack:
    """The configured voice; ValueError (one line) for an unknown mode or language."""
    return VoicePack(audio.mode, audio.language)


def open_player(audio: AudioConfig, audio_out: Path | None) -> Player:
    """The earphone, or a WAV file on frame time for ``--audio-out``.

    The earphone is opened and played in a child process (:mod:`audio.remote`),
    so an output whose open or write blocks never stops the loop. One that is
    missing at boot is not fatal: it is said once and retried with backoff.
    """
    if audio_out is not None:
        return TimelineWriter(audio_out, volume=audio.volume, muted=audio.muted)
    return ChildPlayer(audio.device, audio.volume, audio.muted)


def _has_pattern(label: str) -> bool:
    try:
        pattern_for(label)
    except ValueError:
        return False
    return True


class Announcer:
    """Speaks expressions and events, and the answers to the buttons.

    It knows nothing of the loop: the loop, the only thread that calls it,
    hands it the frame time ``t`` of each sound (where it goes on an
    ``--audio-out`` timeline) and whatever an answer says.
    """

    def __init__(self, voice: VoicePack, player: Player, haptics: Haptics | None = None) -> None:
        self.voice = voice
        self.player = player
        self.haptics = haptics
        self._said: set[Notice] = set()

    @property
    def _muted_mark(self) -> str:
        """" (muted)" while muted: the log keeps every decision, but must not
        claim the wearer heard one that the player dropped."""
        return " (muted)" if self.player.muted else ""

    def announce(self, a: Announcement) -> None:
        """An expression, or a change of the face in view, from the per-frame stages."""
        if isinstance(a, FaceCue):
            log.info("earcon %s t %.2fs%s", a.change.value, a.t, self._muted_mark)
            self.player.play(face_earcon(a.change.value), a.t)
            return
        if a.hedged:  # no vibration: the motor's rhythm could not tell it from a sure word
            log.info("hedge %s confidence %.2f t %.2fs%s", a.label, a.confidence, a.t, self._muted_mark)
            self.player.play(self.voice.hedge(a.label), a.t)
            return
        log.info("announce %s confidence %.2f t %.2fs%s", a.label, a.confidence, a.t, self._muted_mark)
        self.player.play(self.voice.sound(a.label), a.t)
        if self.haptics is not None and _has_pattern(a.label):
            self.haptics.play(a.label)

    def event(self, notice: Notice, t: float) -> None:
        """A fault or state change, said once until it recurs after :meth:`recovered`
        (each model update is news)."""
        if notice in self._said and notice is not Notice.MODEL_UPDATED:
            return
        self._said.add(notice)
        log.info("event %s t %.2fs%s", notice.value, t, self._muted_mark)
        self.player.play(self.voice.sound(notice.value), t)

    def recovered(self, notice: Notice) -> None:
        """The fault is gone: say it again if it comes back."""
        self._said.discard(notice)

    # -- answers to the buttons ----------------------------------------------
    def repeat(self, current: Expression | None, t: float) -> None:
        """The last expression again, hedged if it was, or "no face" (None); silent while muted."""
        if current is None:
            log.info("button repeat: noface%s", self._muted_mark)
            self.player.play(self.voice.sound("noface"), t, force=False)
            return
        log.info("button repeat: %s%s%s", "maybe " if current.hedged else "", current.label, self._muted_mark)
        sound = self.voice.hedge(current.label) if current.hedged else self.voice.sound(current.label)
        self.player.play(sound, current.t, force=False)

    def toggle_mute(self, t: float) -> None:
        muted = not self.player.muted
        self.player.set_muted(muted)
        log.info("button mute: %s", "muted" if muted else "sound on")
        self.player.play(self.voice.sound("muted" if muted else "unmuted"), t, force=True)

    def status(self, model_version: str | None, camera_ok: bool, t: float) -> None:
        """Say the model version (None: no model) and the camera state, even while muted."""
        model = f"model version {model_version}" if model_version is not None else "no model"
        log.info("button status: %s, camera %s", model, "ok" if camera_ok else "not working")
        self.player.play(self.voice.sentence(status_keys(model_version, camera_ok)), t, force=True)

    def people(self, cue: PersonCue, t: float) -> None:
        """Who is there, from the clips (ready at once), even while muted: the wearer asked."""
        log.info("button people: %s", cue_text(cue))
        self.player.play(self.voice.phrase(cue_keys(cue)), t, force=True)

    def close(self, end_t: float) -> None:
        """Stop the motor and the player; a timeline is written up to ``end_t``."""
        if self.haptics is not None:
            self.haptics.close()
        self.player.close(end_t)


def build_announcer(cfg: Config, audio_out: Path | None = None) -> Announcer:
    """Voice, player and motor from the config; GPIO trouble only disables the motor."""
    voice = voice_for(cfg.audio)
    player = open_player(cfg.audio, audio_out)
    haptics = None
    if cfg.haptics.pin:
        try:
            haptics = Haptics(cfg.haptics.pin)
        except GpioUnavailable as exc:
            log.error("haptics disabled: %s", exc)
    return Announcer(voice, player, haptics)


def say(cfg: Config, label: str, audio_out: Path | None = None) -> int:
    """``facecue say LABEL``: play one sound and wait for it to finish."""
    voice = voice_for(cfg.audio)
    sound = voice.sound(label)
    # Unlike the daemon, a one-shot command has no later sound to wait for: an
    # output it cannot open is its failure, said once, with exit status 1.
    player = TimelineWriter(audio_out, volume=cfg.audio.volume) if audio_out is not None else \
        PyAudioPlayer(cfg.audio.device, cfg.audio.volume)
    player.play(sound, 0.0, force=True)
    player.wait(sound.duration + 2.0)
    player.close()
    return 0
