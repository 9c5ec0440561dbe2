"""Playing sounds through PyAudio (PortAudio): the earphone.

A callback stream pulls samples from a :class:`Feed`; a new sound replaces
the one playing at the next ~20 ms buffer. The stream runs only while there
is something to play, so an idle device costs no CPU. A missing or busy
device raises :class:`AudioUnavailable` at open; a stream that dies later
(earphone unplugged) is logged once and reopened on the next play, then
with backoff while it keeps failing, so audio trouble never stops the daemon.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
import time
from typing import Any

import numpy as np

from audio.player import AudioUnavailable, Gain, GainControls
from audio.sound import SAMPLE_RATE, Sound
from core.quiet import native_stderr_to_debug

log = logging.getLogger(__name__)

FRAMES_PER_BUFFER = 320  # 20 ms at 16 kHz: how late a cut-off can be
MAX_BACKOFF = 30.0  # seconds between attempts to reopen a failed output

_alsa_handler: Any = None  # kept alive: ALSA calls it from C


def _quiet_native_libraries() -> None:
    """Stop ALSA printing dozens of probe errors on every PortAudio start
    (they would flood the journal), and stop JACK trying to start a server."""
    global _alsa_handler
    os.environ.setdefault("JACK_NO_START_SERVER", "1")
    if _alsa_handler is not None:
        return
    name = ctypes.util.find_library("asound")
    if name is None:
        return
    try:
        asound = ctypes.cdll.LoadLibrary(name)
    except OSError:
        return
    handler_type = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                                    ctypes.c_int, ctypes.c_char_p)
    _alsa_handler = handler_type(lambda *_: None)
    asound.snd_lib_error_set_handler(_alsa_handler)


def _pyaudio() -> Any:
    try:
        import pyaudio
    except ImportError as exc:
        raise AudioUnavailable(f"PyAudio is not installed ({exc})") from None
    return pyaudio


def _open_portaudio() -> Any:
    pyaudio = _pyaudio()
    _quiet_native_libraries()
    try:
        with native_stderr_to_debug("portaudio"):  # JACK's "cannot connect to server" on every start
            return pyaudio.PyAudio()
    except Exception as exc:
        raise AudioUnavailable(f"PortAudio failed to start: {exc}") from None


def _outputs(pa: Any) -> list[tuple[int, str]]:
    out = []
    for i in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(i)
        if info.get("maxOutputChannels", 0) > 0:
            out.append((i, str(info["name"])))
    return out


def list_output_devices() -> list[tuple[int, str]]:
    """(index, name) of every output device PortAudio sees."""
    pa = _open_portaudio()
    try:
        return _outputs(pa)
    finally:
        pa.terminate()


def resolve_output(spec: str | int | None) -> tuple[int, str]:
    """(index, name) of the output a player for ``spec`` opens: what ``facecue
    doctor`` must check, since the configured device, not just any, is the earphone.
    AudioUnavailable, listing the outputs there are, when it is missing."""
    pa = _open_portaudio()
    try:
        index = find_output_device(pa, spec)
        return index, str(pa.get_device_info_by_index(index)["name"])
    finally:
        pa.terminate()


def find_output_device(pa: Any, spec: str | int | None) -> int:
    """The device index for ``spec``: empty/None the default output, an index
    (int or digits), or a case-insensitive part of the device name."""
    outputs = _outputs(pa)
    known = "; ".join(f"{i}: {name}" for i, name in outputs) or "none"
    if spec is None or spec == "":
        try:
            return int(pa.get_default_output_device_info()["index"])
        except OSError:
            raise AudioUnavailable(f"no default audio output; outputs: {known}") from None
    if isinstance(spec, int) or spec.strip().isdigit():
        index = int(spec)
        if any(i == index for i, _ in outputs):
            return index
        raise AudioUnavailable(f"no audio output with index {index}; outputs: {known}")
    matches = [i for i, name in outputs if spec.lower() in name.lower()]
    if not matches:
        raise AudioUnavailable(f"no audio output matching {spec!r}; outputs: {known}")
    return matches[0]


class Feed:
    """The samples the stream callback plays next; swapped atomically by play."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._samples = np.zeros(0, np.int16)
        self._pos = 0
        self._done = True  # the callback has handed out the last buffer

    @property
    def done(self) -> bool:
        with self._lock:
            return self._done

    def start(self, samples: np.ndarray) -> bool:
        """Play ``samples`` from the start, replacing anything unplayed.
        True when the stream had already finished and must be restarted."""
        with self._lock:
            self._samples, self._pos = samples, 0
            was_done, self._done = self._done, False
            return was_done

    def clear(self) -> None:
        with self._lock:
            self._samples, self._pos = np.zeros(0, np.int16), 0

    def read(self, frames: int) -> tuple[bytes, bool]:
        """The next ``frames`` samples (zero-padded) and whether they are the last."""
        with self._lock:
            chunk = self._samples[self._pos:self._pos + frames]
            self._pos += len(chunk)
            self._done = self._pos >= len(self._samples)
            last = self._done
        if len(chunk) < frames:
            chunk = np.concatenate([chunk, np.zeros(frames - len(chunk), np.int16)])
        return chunk.astype("<i2").tobytes(), last


class PyAudioPlayer(GainControls):
    """A :class:`~audio.player.Player` on a PortAudio output device.

    ``device``: "" for the default output, an index, or part of a name.
    ``open_now=False`` opens at the first play instead (retrying with
    backoff): for a daemon that starts before its earphone is plugged in.
    """

    def __init__(self, device: str | int = "", volume: float = 1.0, muted: bool = False,
                 open_now: bool = True) -> None:
        self.device = device
        self._pyaudio = _pyaudio()
        self._gain = Gain(volume, muted)
        self._feed = Feed()
        self._lock = threading.Lock()
        self._pa: Any = None
        self._stream: Any = None
        self.sample_rate = SAMPLE_RATE
        self._failures = 0
        self._retry_at = 0.0
        self._closed = False
        self._why = "not opened yet"  # why there is no stream, while there is none
        self.opened = ""  # which output the last open found, for the log
        if open_now:
            self._open()

    # -- the device ------------------------------------------------------------
    def _open(self) -> None:
        pyaudio = self._pyaudio
        pa = _open_portaudio()
        try:
            index = find_output_device(pa, self.device)
            info = pa.get_device_info_by_index(index)
            rate = SAMPLE_RATE
            try:
                pa.is_format_supported(rate, output_device=index, output_channels=1,
                                       output_format=pyaudio.paInt16)
            except ValueError:  # e.g. a raw hw: device; sounds are resampled at play
                rate = int(info["defaultSampleRate"])
            self._feed = Feed()
            stream = pa.open(format=pyaudio.paInt16, channels=1, rate=rate, output=True,
                             output_device_index=index, frames_per_buffer=FRAMES_PER_BUFFER,
                             stream_callback=self._callback, start=False)
        except AudioUnavailable:
            pa.terminate()
            raise
        except Exception as exc:
            pa.terminate()
            raise AudioUnavailable(f"cannot open audio output {self.device or 'default'!r}: {exc}") from None
        self._pa, self._stream, self.sample_rate = pa, stream, rate
        self.opened = f"output {index}: {info['name']} at {rate} Hz"
        log.info("audio %s", self.opened)

    def _teardown(self) -> None:
        stream, pa, self._stream, self._pa = self._stream, self._pa, None, None
        try:
            if stream is not None:
                stream.close()  # an active stream is aborted: returns at once
        except Exception as exc:  # already broken: nothing more to lose
            log.debug("audio stream close: %s", exc)
        if pa is not None:
            pa.terminate()

    def _fail(self, why: object) -> None:
        """Drop the output and schedule a reopen; one log line per outage."""
        self._teardown()
        self._why = str(why)
        self._failures += 1
        # the first reopen is immediate (a glitch), then 1, 2, 4 ... s (a missing device)
        delay = 0.0 if self._failures == 1 else min(2.0 ** (self._failures - 2), MAX_BACKOFF)
        self._retry_at = time.monotonic() + delay
        if self._failures == 1:
            log.error("audio output failed (%s); retrying on later sounds", why)
        else:
            log.debug("audio output still unavailable (%s); next try in %.0fs", why, delay)

    def _ready(self) -> bool:
        """The stream is usable, reopening it if it died and backoff allows."""
        if self._stream is not None and not self._feed.done and not self._stream.is_active():
            self._fail("stream stopped while playing")
        if self._stream is not None:
            return True
        if time.monotonic() < self._retry_at:
            return False
        try:
            self._open()
        except AudioUnavailable as exc:
            self._fail(exc)
            return False
        if self._failures:
            log.info("audio output back after %d failed attempt(s)", self._failures)
        self._failures = 0
        return True

    def _callback(self, in_data: Any, frame_count: int, time_info: Any, status: int) -> tuple[bytes, int]:
        data, last = self._feed.read(frame_count)
        return data, self._pyaudio.paComplete if last else self._pyaudio.paContinue

    def ensure_open(self) -> None:
        """Open the output now if it is closed and backoff allows (:attr:`problem` says
        how that went): so that a missing device is found before the first sound."""
        with self._lock:
            if not self._closed:
                self._ready()

    @property
    def problem(self) -> str | None:
        """Why there is no output (None while there is one)."""
        return None if self._stream is not None else self._why

    # -- the Player interface ----------------------------------------------------
    def play(self, sound: Sound, t: float = 0.0, force: bool = False) -> None:
        """Start ``sound`` now, cutting off any sound still playing. ``t`` (frame
        time) is not needed for live output. Never raises for device trouble:
        a failing start is retried once on a reopened output, then dropped."""
        with self._lock:
            if self._closed or (self._gain.muted and not force):
                return
            for _ in range(2):
                if not self._ready():
                    return
                samples = self._gain.audible(sound, self.sample_rate, force)
                if samples is None:
                    return
                try:
                    if self._feed.start(samples):
                        if not self._stream.is_stopped():
                            self._stream.stop_stream()  # finished: PortAudio wants a stop before a start
                        self._stream.start_stream()
                    return
                except Exception as exc:
                    self._fail(exc)

    def wait(self, timeout: float) -> bool:
        """Block until the output is idle (the sound played out, or the output
        failed), at most ``timeout`` s; False on timeout."""
        end = time.monotonic() + timeout
        while True:
            with self._lock:
                if self._stream is None or not self._stream.is_active():
                    return True
            if time.monotonic() >= end:
                return False
            time.sleep(0.01)

    def close(self, end_t: float | None = None) -> None:
        """Stop at once (pending audio is discarded) and release the device;
        ``end_t`` is for recordings: live output has reached it already."""
        with self._lock:
            self._closed = True
            self._feed.clear()
            self._teardown()
