"""Push buttons on the hat: repeat the last expression, mute, and hear the status.

A blind wearer cannot look at a screen, so everything the daemon can be asked
happens through one or two buttons and is answered by voice:

* one button: a short press repeats the last expression (or "no face"), a
  long press (``long_press`` s, default 1 s) toggles mute, and a hold
  (``status_hold`` s, default 3 s) speaks the status. The status fires at the
  hold threshold, while the button is still down, so the wearer hears that
  the hold worked and can let go; letting go then does nothing more.
* two buttons: button A repeats on a short press and speaks the status when
  held; button B toggles mute as soon as it is pressed.
* either layout: two short presses of the main button within ``double_press``
  s (default 0.4 s) ask who is there (the person cue). The one gesture no
  action used, on the button the wearer already asks with; the price is
  that a single short press repeats only once that window has passed. With
  ``double_press`` 0 a short press repeats at once and there is no person cue.

Every press triggers exactly one action (a double press is one). Pins are BCM numbers or gpiozero pin
names ("GPIO17", "BOARD11"); ``None`` or "" (the config's empty value) means
no button, as on a laptop. Buttons are wired from the pin to ground and use
the Pi's internal pull-up.

The callbacks run on gpiozero's threads (the pin's edge thread and the hold
thread), not on the daemon's loop: they must be short and thread-safe, and
must not call :meth:`Buttons.close`. The daemon's only post the press to
the loop (:func:`device.presses.press_buttons`). An exception
raised by a callback is logged and swallowed, so one bad callback cannot kill
the thread that serves every later press.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Callable

from gpiozero import Button

from device.gpio import PinSpec, claim_gpio, no_pin

log = logging.getLogger(__name__)

Callback = Callable[[], None]


def run_callback(name: str, callback: Callback) -> None:
    """Call ``callback``, logging (not raising) its exception: the GPIO thread must live on."""
    try:
        callback()
    except Exception:
        log.exception("%s callback failed", name)


class PressGesture:
    """Turns one button's pressed/held/released events into exactly one action per press.

    The action is decided at the hold threshold (gpiozero's ``when_held``)
    or on release, whichever comes first; whichever comes second finds the
    press already decided and does nothing. That is what keeps a long press
    from also repeating, and a hold from also toggling mute.

    With ``on_double``, a short press waits ``double_press`` s (on a timer
    thread) for a second one: a second short press makes the two one double
    press; a second press that turns out long or held first lets the waiting
    short press act, then acts itself.
    """

    def __init__(self, name: str, on_short: Callback, on_long: Callback | None, on_hold: Callback,
                 long_press: float, status_hold: float, on_double: Callback | None = None,
                 double_press: float = 0.0) -> None:
        """``on_long`` None: presses shorter than ``status_hold`` are all short ones.
        ``on_double`` None or ``double_press`` 0: no double press, a short press acts at once."""
        self._name = name
        self._on_short = on_short
        self._on_long = on_long
        self._on_hold = on_hold
        self._on_double = on_double if double_press > 0 else None
        self._long_press = long_press
        self._status_hold = status_hold
        self._double_press = double_press
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._waiting: threading.Timer | None = None  # a short press waiting for a second one
        self._second = False  # the press now down came within the window of a short one

    def pressed(self) -> None:
        with self._lock:
            self._down_since = time.monotonic()
            self._second = self._waiting is not None
            if self._waiting is not None:
                self._waiting.cancel()
                self._waiting = None

    def held(self) -> None:
        """Hold threshold reached with the button still down: speak the status now."""
        with self._lock:
            if self._down_since is None:
                return
            self._down_since = None
            second, self._second = self._second, False
        if second:
            run_callback(f"{self._name} press", self._on_short)
        run_callback(f"{self._name} hold", self._on_hold)

    def released(self) -> None:
        with self._lock:
            if self._down_since is None:  # decided at the hold threshold, or pressed before start-up
                return
            down_for = time.monotonic() - self._down_since
            self._down_since = None
            second, self._second = self._second, False
            short = down_for < (self._long_press if self._on_long is not None else self._status_hold)
            if short and self._on_double is not None and not second:
                self._waiting = threading.Timer(self._double_press, self._single)
                self._waiting.daemon = True
                self._waiting.start()
                return
        if short and second:
            run_callback(f"{self._name} double press", self._on_double)
            return
        if second:
            run_callback(f"{self._name} press", self._on_short)
        # A release right at the threshold can beat gpiozero's hold thread to the lock.
        if down_for >= self._status_hold:
            run_callback(f"{self._name} hold", self._on_hold)
        elif self._on_long is not None and down_for >= self._long_press:
            run_callback(f"{self._name} long press", self._on_long)
        else:
            run_callback(f"{self._name} press", self._on_short)

    def _single(self) -> None:
        """The window passed without a second press: the waiting short press repeats."""
        with self._lock:
            if self._waiting is None or self._waiting is not threading.current_thread():
                return
            self._waiting = None
        run_callback(f"{self._name} press", self._on_short)

    def close(self) -> None:
        """Drop a short press still waiting for a second one."""
        with self._lock:
            if self._waiting is not None:
                self._waiting.cancel()
                self._waiting = None


class Buttons:
    """The wearer's buttons; see the module docstring for the two layouts.

    ``long_press``, ``status_hold`` and ``bounce_time`` are seconds and match
    the ``[buttons]`` config keys of the same names. ``pin_factory`` is for
    tests (gpiozero's ``MockFactory``); None uses the machine's GPIO.

    Raises ValueError for inconsistent timings or a mute pin without a main
    pin, and :class:`GpioUnavailable` when a pin cannot be claimed (no pin is
    left claimed then).
    """

    def __init__(self, on_repeat: Callback, on_mute: Callback, on_status: Callback, *,
                 on_people: Callback | None = None, repeat_pin: PinSpec = None, mute_pin: PinSpec = None,
                 long_press: float = 1.0, status_hold: float = 3.0, bounce_time: float = 0.05,
                 double_press: float = 0.0, pin_factory: object | None = None) -> None:
        if not 0 < long_press < status_hold:
            raise ValueError(f"buttons need 0 < long_press < status_hold, got {long_press} and {status_hold}")
        if bounce_time < 0:
            raise ValueError(f"buttons bounce_time must be >= 0, got {bounce_time}")
        if double_press < 0:
            raise ValueError(f"buttons double_press must be >= 0, got {double_press}")
        if no_pin(repeat_pin) and not no_pin(mute_pin):
            raise ValueError("buttons: a mute_pin needs a repeat_pin (button A) as well")
        self._devices: list[Button] = []
        self._gesture: PressGesture | None = None
        if no_pin(repeat_pin):
            return
        two_buttons = not no_pin(mute_pin)
        gesture = self._gesture = PressGesture(
            "button A" if two_buttons else "button", on_short=on_repeat, on_long=None if two_buttons else on_mute,
            on_hold=on_status, long_press=long_press, status_hold=status_hold, on_double=on_people,
            double_press=double_press)

        def make(pin: int | str) -> Button:
            # hold_time only matters where when_held is set (the main button).
            return Button(pin, pull_up=True, bounce_time=bounce_time or None, hold_time=status_hold,
                          pin_factory=pin_factory)

        try:
            main = claim_gpio("repeat button", repeat_pin, functools.partial(make, repeat_pin))
            self._devices.append(main)
            main.when_pressed = gesture.pressed
            main.when_held = gesture.held
            main.when_released = gesture.released
            if two_buttons:
                mute = claim_gpio("mute button", mute_pin, functools.partial(make, mute_pin))
                self._devices.append(mute)
                mute.when_pressed = functools.partial(run_callback, "mute button", on_mute)
        except BaseException:
            self.close()
            raise

    @property
    def layout(self) -> str:
        """"none", "one" or "two" buttons: for the start-up log line."""
        return ("none", "one", "two")[len(self._devices)]

    def close(self) -> None:
        """Release the pins (and gpiozero's hold thread); safe to call twice."""
        if self._gesture is not None:
            self._gesture.close()
        while self._devices:
            self._devices.pop().close()

    def __enter__(self) -> Buttons:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
