"""Vibration patterns on a coin motor: the expression by touch instead of by ear.

For noisy streets, or a wearer who prefers touch, each expression has its own
short rhythm of short and long buzzes on a coin vibration motor switched by a
transistor from one GPIO pin (pin high = motor on). The rhythms are meant to
be told apart without counting carefully, and loosely mimic the expression:

========  =============  ==========================
label     pulses         idea
========  =============  ==========================
angry     long long      two hard shoves
disgust   long short     a turn away
fear      short x3       trembling
happy     short short    a light "ha-ha"
neutral   short          nothing special
sad       long           one slow sigh
surprise  short long     a rising "oh!"
========  =============  ==========================

Playing is non-blocking (a small thread per pattern) because the daemon's
loop must keep reading frames; a new pattern cuts off the one still playing,
since only the latest expression matters. The motor is off after every
pattern, after a cut-off and after :meth:`Haptics.close`.
"""
from __future__ import annotations

import logging
import threading

from gpiozero import DigitalOutputDevice

from device.gpio import PinSpec, claim_gpio, no_pin

log = logging.getLogger(__name__)

SHORT = 1  # pulse lengths, in units
LONG = 3
GAP_UNITS = 2  # between pulses: a coin motor spins down slowly, so a one-unit gap blurs two pulses
UNIT_S = 0.12  # seconds per unit: a 0.12 s short buzz is clearly felt through a hat band

PATTERNS: dict[str, tuple[int, ...]] = {
    "angry": (LONG, LONG),
    "disgust": (LONG, SHORT),
    "fear": (SHORT, SHORT, SHORT),
    "happy": (SHORT, SHORT),
    "neutral": (SHORT,),
    "sad": (LONG,),
    "surprise": (SHORT, LONG),
}


def pattern_for(label: str) -> tuple[int, ...]:
    """The pulse lengths (in units) for an expression label."""
    try:
        return PATTERNS[label]
    except KeyError:
        raise ValueError(f"no vibration pattern for {label!r}; known: {', '.join(PATTERNS)}") from None


class Haptics:
    """A vibration motor on ``pin`` (BCM number or gpiozero name); None or "" = no motor.

    With no motor, :meth:`play` still checks the label and then does nothing,
    so the daemon calls it the same way whether or not a motor is wired.
    ``unit`` is the length of a short pulse in seconds. ``pin_factory`` is for
    tests (gpiozero's ``MockFactory``). Raises
    :class:`~device.buttons.GpioUnavailable` when the pin cannot be claimed.
    """

    def __init__(self, pin: PinSpec = None, *, unit: float = UNIT_S, pin_factory: object | None = None) -> None:
        if unit <= 0:
            raise ValueError(f"haptics unit must be > 0 seconds, got {unit}")
        self._unit = unit
        self._motor = None if no_pin(pin) else claim_gpio(
            "vibration motor", pin,
            lambda: DigitalOutputDevice(pin, active_high=True, initial_value=False, pin_factory=pin_factory))
        self._lock = threading.Lock()  # play/close may come from the loop and from a button thread at once
        self._stop = threading.Event()
        self._player: threading.Thread | None = None
        self._closed = False

    @property
    def enabled(self) -> bool:
        """Whether a motor is wired (for the start-up log line)."""
        return self._motor is not None

    def play(self, label: str) -> None:
        """Start ``label``'s pattern in the background, cutting off any pattern still playing."""
        pulses = pattern_for(label)
        with self._lock:
            if self._closed:
                raise RuntimeError("haptics already closed")
            self._cut_off()
            if self._motor is None:
                return
            self._stop = threading.Event()
            self._player = threading.Thread(target=self._buzz, args=(pulses, self._stop),
                                            name=f"haptics-{label}", daemon=True)
            self._player.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current pattern ends (e.g. a motor test before exit); False on timeout."""
        player = self._player
        if player is None:
            return True
        player.join(timeout)
        return not player.is_alive()

    def close(self) -> None:
        """Stop any pattern, switch the motor off and release its pin; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._cut_off()
            if self._motor is not None:
                self._motor.off()
                self._motor.close()

    def __enter__(self) -> Haptics:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _cut_off(self) -> None:
        """Stop the playing pattern and wait until its thread has switched the motor off (lock held)."""
        self._stop.set()
        if self._player is not None:
            self._player.join()
            self._player = None

    def _buzz(self, pulses: tuple[int, ...], stop: threading.Event) -> None:
        """Play one pattern on this thread; ``stop`` set = return early. The motor always ends off."""
        assert self._motor is not None
        try:
            for i, units in enumerate(pulses):
                if i and stop.wait(GAP_UNITS * self._unit):
                    return
                self._motor.on()
                if stop.wait(units * self._unit):
                    return
                self._motor.off()
        except Exception:
            log.exception("vibration pattern failed")
        finally:
            self._motor.off()
