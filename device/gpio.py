"""Claiming GPIO pins for the buttons and the vibration motor.

Shared by :mod:`device.buttons` and :mod:`device.haptics` so both report a
missing GPIO chip or a busy pin the same way: one line, and the daemon
carries on without that part.
"""
from __future__ import annotations

import logging
import warnings
from typing import Callable, TypeVar

from gpiozero import Device

log = logging.getLogger(__name__)

PinSpec = int | str | None
T = TypeVar("T", bound=Device)


class GpioUnavailable(RuntimeError):
    """GPIO cannot be used here (no GPIO chip, pin busy or unknown): one line for the log.

    The daemon logs it and carries on without buttons or haptics; the wearer
    still hears expressions.
    """


def claim_gpio(what: str, pin: int | str, make: Callable[[], T]) -> T:
    """Build a gpiozero device, turning any failure into :class:`GpioUnavailable`.

    Each pin driver (lgpio, RPi.GPIO, pigpio, native) raises its own exception
    types for a missing chip or a busy pin, so all of them are caught here.
    gpiozero's fallback warnings (one per driver it tried) are folded into the
    one-line message instead of spamming the log, because they say why no
    driver loaded (e.g. "No module named 'lgpio'"). Recording warnings swaps
    process-wide filters, so call this at start-up, not from several threads.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            device = make()
        except Exception as e:  # see docstring: driver-specific exception types
            reasons = "; ".join(str(w.message) for w in caught)
            detail = f"{type(e).__name__}: {e}" + (f" ({reasons})" if reasons else "")
            raise GpioUnavailable(f"{what} on pin {pin!r} unavailable: {detail}".replace("\n", " ")) from e
    for w in caught:
        log.warning("%s on pin %r: %s", what, pin, w.message)
    return device


def no_pin(pin: PinSpec) -> bool:
    """True for the config's ways of saying "not wired": None or an empty string."""
    return pin is None or pin == ""
