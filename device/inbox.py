"""The loop's one inbox: everything other threads and signals ask of the loop.

The decider, the model slot's serving model and the loop's state belong to
the loop's thread. gpiozero's threads (button presses), the model slot's
loader thread (a model ready to serve) and signal handlers (reload, stop)
never touch them: they post a typed event here, and the loop takes the
events in the order they came, between two frames or at once while it
waits (for a camera to come back, for a model). No lock guards the loop's
state, and an answer never races a frame.
"""
from __future__ import annotations

import queue
from dataclasses import dataclass
from enum import Enum

from device.classify import Classifier


class Press(Enum):
    """What the wearer asked for (see :mod:`device.buttons` for the gestures)."""

    REPEAT = "repeat"
    MUTE = "mute"
    STATUS = "status"
    PEOPLE = "people"  # who is there: the person cue


class Request(Enum):
    """What a signal asks of the loop."""

    RELOAD = "reload"  # SIGHUP: look at the model store now
    STOP = "stop"  # SIGTERM, SIGINT: leave the loop


@dataclass(frozen=True)
class ModelReady:
    """A model the slot loaded in the background, to serve from the next frame."""

    classifier: Classifier


Event = Press | Request | ModelReady


class Inbox:
    """Events waiting for the loop, in the order they were posted.

    Built on :class:`queue.SimpleQueue`, whose ``put`` is reentrant: a signal
    handler may post even while the loop sits in :meth:`wait`.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Event] = queue.SimpleQueue()

    def post(self, event: Event) -> None:
        """From any thread or a signal handler."""
        self._queue.put(event)

    def wait(self, timeout: float) -> list[Event]:
        """Every event posted so far, waiting up to ``timeout`` s for the first one
        (0: only what is already there)."""
        events = []
        try:
            events.append(self._queue.get(timeout=max(timeout, 0.0)))
            while True:
                events.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return events
