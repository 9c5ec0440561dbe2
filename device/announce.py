"""From announcements and button presses to what the wearer hears and feels.

The loop hands :class:`Announcer` plain :class:`~device.frames.Announcement`
records; this module owns the voice, the player (earphone or ``--audio-out``
file), the optional vibration motor and the buttons. A missing sound card,
GPIO chip or motor is logged once and the rest keeps working: the log still
says every announcement.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from audio.earcons import face_earcon
from audio.playback import PyAudioPlayer
from audio.player import AudioUnavailable, Player
from audio.timeline import TimelineWriter
from audio.voice import VoicePack
from device.buttons import Buttons
from device.config import AudioConfig, Config
from device.frames import Announcement
from device.gpio import GpioUnavailable
from device.haptics import Haptics, pattern_for

if TYPE_CHECKING:
    from device.loop import Daemon

log = logging.getLogger("facecue")

FACE_EVENTS = ("face", "noface")  # the decider's soft earcons for a face arriving/leaving


def voice_for(audio: AudioConfig) -> VoicePack:
    """The configured voice; ValueError (one line) for an unknown mode or language."""
    return VoicePack(audio.mode, audio.language)


def open_player(audio: AudioConfig, audio_out: Path | None) -> Player:
    """The earphone, or a WAV file on frame time for ``--audio-out``.

    An earphone that is missing at boot is not fatal: the player opens it at
    the first announcement and keeps retrying with backoff.
    """
    if audio_out is not None:
        return TimelineWriter(audio_out, volume=audio.volume, muted=audio.muted)
    try:
        return PyAudioPlayer(audio.device, audio.volume, audio.muted)
    except AudioUnavailable as exc:
        log.error("audio error: %s; will retry at each announcement", exc)
        return PyAudioPlayer(audio.device, audio.volume, audio.muted, open_now=False)


def _has_pattern(label: str) -> bool:
    try:
        pattern_for(label)
    except ValueError:
        return False
    return True


class Announcer:
    """Speaks expressions and events; answers the buttons."""

    def __init__(self, voice: VoicePack, player: Player, haptics: Haptics | None = None) -> None:
        self.voice = voice
        self.player = player
        self.haptics = haptics
        self.buttons: Buttons | None = None
        self.daemon: Daemon | None = None
        self._said_events: set[str] = set()

    @property
    def now(self) -> float:
        """The current frame time: where a button's answer goes on the timeline."""
        return (self.daemon.decider.last_t if self.daemon else None) or 0.0

    def attach(self, daemon: "Daemon", cfg: Config) -> None:
        """Wire the buttons to this daemon (pins from ``[buttons]``)."""
        self.daemon = daemon
        b = cfg.buttons
        try:
            self.buttons = Buttons(self.repeat, self.toggle_mute, self.status,
                                   repeat_pin=b.repeat_pin, mute_pin=b.mute_pin, long_press=b.long_press,
                                   status_hold=b.status_hold, bounce_time=b.bounce_time)
        except GpioUnavailable as exc:
            log.error("buttons disabled: %s", exc)
            return
        if self.buttons.layout != "none":
            log.info("buttons: %s-button layout", self.buttons.layout)

    @property
    def _muted_mark(self) -> str:
        """" (muted)" while muted: the log keeps every decision, but must not
        claim the wearer heard one that the player dropped."""
        return " (muted)" if self.player.muted else ""

    def announce(self, a: Announcement) -> None:
        """An expression (or a face arriving/leaving) from the decider."""
        if a.label in FACE_EVENTS:
            log.info("earcon %s t %.2fs%s", a.label, a.t, self._muted_mark)
            self.player.play(face_earcon(a.label), a.t)
            return
        log.info("announce %s confidence %.2f t %.2fs%s", a.label, a.confidence, a.t, self._muted_mark)
        self.player.play(self.voice.sound(a.label), a.t)
        if self.haptics is not None and _has_pattern(a.label):
            self.haptics.play(a.label)

    def event(self, name: str) -> None:
        """A fault or state change (camera_error, model_updated, ...), said once until it recurs after recovery."""
        if name in self._said_events and name != "model_updated":
            return
        self._said_events.add(name)
        self.player.play(self.voice.sound(name), self.now)

    def recovered(self, name: str) -> None:
        """The fault is gone: say it again if it comes back."""
        self._said_events.discard(name)

    # -- buttons (called on gpiozero's threads: short and thread-safe) --------
    def repeat(self) -> None:
        a = self.daemon.decider.current()
        log.info("button repeat: %s%s", a.label, self._muted_mark)
        self.player.play(self.voice.sound(a.label), self.now, force=False)

    def toggle_mute(self) -> None:
        muted = not self.player.muted
        self.player.set_muted(muted)
        log.info("button mute: %s", "muted" if muted else "sound on")
        self.player.play(self.voice.sound("muted" if muted else "unmuted"), self.now, force=True)

    def status(self) -> None:
        text = self.daemon.status_text()
        log.info("button status: %s", text)
        self.player.play(self.voice.speak(text), self.now, force=True)

    def close(self) -> None:
        if self.buttons is not None:
            self.buttons.close()
        if self.haptics is not None:
            self.haptics.close()
        if isinstance(self.player, TimelineWriter):
            self.player.close(end_t=self.now)
        else:
            self.player.close()


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
    player = open_player(cfg.audio, audio_out)
    player.play(sound, 0.0, force=True)
    if isinstance(player, PyAudioPlayer):
        player.wait(sound.duration + 2.0)
    player.close()
    return 0
