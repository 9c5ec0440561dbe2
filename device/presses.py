"""Button presses, carried from gpiozero's threads to the daemon's loop.

The buttons' callbacks run on gpiozero's threads, while the decider, the
model slot and the loop's state belong to the loop's thread. So a callback
only posts a :class:`Press` here, and the loop answers it between two frames,
or at once while it waits (for a camera to come back, for a model): no lock
guards the decider, and an answer never races a frame.
"""
from __future__ import annotations

import functools
import logging
import queue
from enum import Enum

from device.buttons import Buttons
from device.config import ButtonsConfig
from device.gpio import GpioUnavailable

log = logging.getLogger("facecue")


class Press(Enum):
    """What the wearer asked for (see :mod:`device.buttons` for the gestures)."""

    REPEAT = "repeat"
    MUTE = "mute"
    STATUS = "status"
    PEOPLE = "people"  # who is there: the person cue


class PressQueue:
    """Presses waiting for the loop, in the order they were made.

    Built on :class:`queue.SimpleQueue`, whose ``put`` is reentrant: a signal
    handler may :meth:`wake` the loop even while the loop sits in :meth:`wait`.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Press | None] = queue.SimpleQueue()

    def post(self, press: Press) -> None:
        """From any thread: ask the loop to answer ``press``."""
        self._queue.put(press)

    def wake(self) -> None:
        """From any thread or a signal handler: end a :meth:`wait` now (SIGTERM)."""
        self._queue.put(None)

    def wait(self, timeout: float) -> list[Press]:
        """Every press posted so far, waiting up to ``timeout`` s for the first one
        (0: only what is already there). A :meth:`wake` ends the wait early."""
        items = []
        try:
            items.append(self._queue.get(timeout=max(timeout, 0.0)))
            while True:
                items.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return [item for item in items if item is not None]


def press_buttons(cfg: ButtonsConfig, presses: PressQueue, pin_factory: object | None = None) -> Buttons:
    """The ``[buttons]`` of the config, posting their presses to ``presses``.

    A GPIO that cannot be claimed is logged once and leaves the device without
    buttons (layout "none"): it still speaks, it only cannot be asked.
    ``pin_factory`` is for tests (gpiozero's ``MockFactory``).
    """
    callbacks = [functools.partial(presses.post, press) for press in (Press.REPEAT, Press.MUTE, Press.STATUS)]
    try:
        buttons = Buttons(*callbacks, on_people=functools.partial(presses.post, Press.PEOPLE),
                          repeat_pin=cfg.repeat_pin, mute_pin=cfg.mute_pin, long_press=cfg.long_press,
                          status_hold=cfg.status_hold, bounce_time=cfg.bounce_time, double_press=cfg.double_press,
                          pin_factory=pin_factory)
    except GpioUnavailable as exc:
        log.error("buttons disabled: %s", exc)
        return Buttons(*callbacks)
    if buttons.layout != "none":
        log.info("buttons: %s-button layout", buttons.layout)
    return buttons
