"""The earphone in a child process, so that an output that blocks cannot stop the loop.

Opening a PortAudio output can block for as long as the sound system likes (ALSA's
``file`` plugin into a named pipe no one reads waits for a reader), and PyAudio
holds Python's lock while it waits: a thread would not help, the whole daemon
would stop, its stats and watchdog pings with it. So :class:`ChildPlayer` hands
each sound to a child process that owns the :class:`~audio.playback.PyAudioPlayer`
and answers every request in one line. The parent talks to it on a thread of its
own with a deadline: a child that does not answer in time is killed, said once as
an ``audio error``, and started again at a later sound, with backoff. Sounds that
wait meanwhile are not queued up: a new one replaces one not yet sent, and one
older than the deadline is dropped (the moment it was for has passed).

Volume and mute are applied here, so the child plays at full scale what it gets.
"""
from __future__ import annotations

import contextlib
import logging
import os
import select
import struct
import subprocess
import sys
import threading
import time

import numpy as np

from audio.player import Gain, GainControls
from audio.sound import Sound

log = logging.getLogger("facecue")

ANSWER_DEADLINE = 5.0  # seconds the output may take to open and start one sound
START_DEADLINE = 60.0  # seconds a fresh child may take to import (a Pi Zero is slow)
MAX_BACKOFF = 30.0  # seconds between restarts of a child that keeps not answering
HEADER = struct.Struct("<II")  # samples, sample rate; the samples follow as int16
READY, OK, ERROR = "ready", "ok", "error "


class ChildPlayer(GainControls):
    """A :class:`~audio.player.Player` on a PortAudio output, played by a child process."""

    def __init__(self, device: str = "", volume: float = 1.0, muted: bool = False) -> None:
        self.device = device
        self._gain = Gain(volume, muted)
        self._cond = threading.Condition()
        self._wanted: tuple[bytes, int, float] | None = (b"", 0, time.monotonic())  # open the output now
        self._busy = False  # a request is out and not answered
        self._closed = False
        self._child: subprocess.Popen | None = None
        self._restarts = 0
        self._restart_at = 0.0
        self._said: str | None = None  # the outage said, until the output answers again
        self._thread = threading.Thread(target=self._run, name="audio", daemon=True)
        self._thread.start()

    # -- the Player interface (the loop's thread) ---------------------------------
    def play(self, sound: Sound, t: float = 0.0, force: bool = False) -> None:
        """Hand ``sound`` to the child; returns at once, whatever the output does."""
        samples = self._gain.audible(sound, sound.sample_rate, force)
        if samples is None:
            return
        with self._cond:
            self._wanted = (samples.astype("<i2").tobytes(), sound.sample_rate, time.monotonic())
            self._cond.notify()

    def wait(self, timeout: float) -> bool:
        """Until the last sound was handed over (not until it was heard), at most ``timeout`` s."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._wanted is not None or self._busy:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, end_t: float | None = None) -> None:
        """Stop at once (well within SIGTERM's 2 s): the child is told to stop, or killed
        if the sender is still waiting on it (it then ends too)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(0.5)
        if not self._thread.is_alive():
            self._stop_child()
        elif self._child is not None:
            self._child.kill()

    # -- the sender (its own thread) ------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while self._wanted is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                (pcm, rate, since), self._wanted = self._wanted, None
                if time.monotonic() - since > ANSWER_DEADLINE:
                    continue  # it waited out a stuck output: too late to be heard
                self._busy = True
            try:
                self._send(pcm, rate)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _send(self, pcm: bytes, rate: int) -> None:
        """One request to the child, started if need be; its answer said if it changed."""
        if self._child is None:
            if time.monotonic() < self._restart_at:
                return
            self._child = subprocess.Popen(
                [sys.executable, "-c", "from audio.remote import serve; serve()", self.device],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            os.set_blocking(self._child.stdin.fileno(), False)
            if self._answer(START_DEADLINE) != READY:
                return self._unanswered("did not start")
        request = HEADER.pack(len(pcm) // 2, rate) + pcm
        if not self._write(request, time.monotonic() + ANSWER_DEADLINE):
            return self._unanswered(f"did not take a sound within {ANSWER_DEADLINE:g}s")
        answer = self._answer(ANSWER_DEADLINE)
        if answer is None:
            return self._unanswered(f"did not answer within {ANSWER_DEADLINE:g}s (opening or writing it blocks)")
        self._restarts = 0
        if answer.startswith(OK + " "):  # the child (re)opened the output: which one
            log.info("audio %s", answer[len(OK) + 1:])
        problem = answer[len(ERROR):] if answer.startswith(ERROR) else None
        if problem and self._said is None:
            log.error("audio error: %s; will retry at each announcement", problem)
        elif problem is None and self._said is not None:
            log.info("audio output back")
        self._said = problem

    def _unanswered(self, what: str) -> None:
        """The child is stuck (or dead): kill it, say so once, start another later."""
        self._stop_child()
        if self._closed:  # killed by close: nothing to say
            return
        self._restart_at = time.monotonic() + min(2.0 ** self._restarts, MAX_BACKOFF)
        self._restarts += 1
        if self._said is None:
            log.error("audio error: the audio output %s; restarting it, sounds are dropped meanwhile", what)
            self._said = what

    def _write(self, data: bytes, end: float) -> bool:
        fd = self._child.stdin.fileno()
        view = memoryview(data)
        while view:
            left = end - time.monotonic()
            if left <= 0 or not select.select([], [fd], [], left)[1]:
                return False
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                continue
            except OSError:  # the child died
                return False
        return True

    def _answer(self, timeout: float) -> str | None:
        """The child's next line, or None if it gives none in ``timeout`` s."""
        fd, line, end = self._child.stdout.fileno(), b"", time.monotonic() + timeout
        while not line.endswith(b"\n"):
            left = end - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            byte = os.read(fd, 1)
            if not byte:
                return None
            line += byte
        return line.decode(errors="replace").strip()

    def _stop_child(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        with contextlib.suppress(OSError):
            child.stdin.close()
        try:
            child.wait(0.3)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        child.stdout.close()


def serve() -> None:
    """The child: play what comes on stdin; answer each request on stdout (``ok`` or
    ``error WHY``); an empty sound only opens the output. Ends at end of input."""
    from audio.playback import PyAudioPlayer

    player = PyAudioPlayer(sys.argv[1], volume=1.0, open_now=False)
    inp, out = sys.stdin.buffer, sys.stdout
    print(READY, file=out, flush=True)
    told = ""
    while len(header := inp.read(HEADER.size)) == HEADER.size:
        count, rate = HEADER.unpack(header)
        pcm = np.frombuffer(inp.read(2 * count), "<i2").astype(np.int16)
        if count:
            player.play(Sound(pcm, rate), force=True)
        else:
            player.ensure_open()
        if player.problem is not None:
            answer, told = ERROR + player.problem.splitlines()[0], ""
        else:
            answer, told = (OK if player.opened == told else f"{OK} {player.opened}"), player.opened
        print(answer, file=out, flush=True)
    player.close()
