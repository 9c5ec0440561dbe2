"""Vibration patterns on a gpiozero mock pin, timed by what the motor thread asks for.

The pattern thread times pulses and gaps with ``Event.wait``; the tests swap
in an event that records each wait (motor state, seconds asked, whether it was
cut off), so a pattern is read from the waits it asked for, not from real
durations that a loaded machine stretches. Where the real thread matters
(cut off mid-pulse, close), pulses are seconds long and the test polls the
pin instead of sleeping a guessed time.
"""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
from gpiozero import DigitalOutputDevice
from gpiozero.pins.mock import MockFactory

from device import haptics as haptics_module
from device.gpio import GpioUnavailable
from device.haptics import GAP_UNITS, LONG, PATTERNS, SHORT, Haptics, pattern_for

EXPRESSIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
UNIT = 0.04
MOTOR_PIN = 18


@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.reset()


class Waits:
    """The pattern thread's ``Event.wait`` calls: (motor on, seconds asked, cut off).

    ``instant``: a wait that is not cut off returns at once, so a whole
    pattern plays in microseconds of real time.
    """

    def __init__(self, pin, instant: bool) -> None:
        self.calls: list[tuple[bool, float, bool]] = []
        waits = self

        class RecordingEvent(threading.Event):
            def wait(self, timeout: float | None = None) -> bool:
                cut = super().wait(0 if instant else timeout)
                waits.calls.append((pin.state, timeout, cut))
                return cut

        self.threading = SimpleNamespace(Event=RecordingEvent, Lock=threading.Lock, Thread=threading.Thread)

    def pulses(self, unit: float) -> tuple[int, ...]:
        """The pulse lengths in units, checking that every gap between them is GAP_UNITS."""
        gaps = [round(t / unit) for on, t, _ in self.calls if not on]
        assert set(gaps) <= {GAP_UNITS}
        return tuple(round(t / unit) for on, t, _ in self.calls if on)


@pytest.fixture
def waits(factory, monkeypatch, request) -> Waits:
    recorder = Waits(factory.pin(MOTOR_PIN), instant=getattr(request, "param", True))
    monkeypatch.setattr(haptics_module, "threading", recorder.threading)
    return recorder


def wait_for(condition, timeout: float = 10.0) -> None:
    """Poll ``condition`` (a loaded machine may be slow to start the thread); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.005)


def test_every_expression_has_its_own_pattern():
    assert tuple(PATTERNS) == EXPRESSIONS
    assert len(set(PATTERNS.values())) == len(EXPRESSIONS)
    for pulses in PATTERNS.values():
        assert pulses and set(pulses) <= {SHORT, LONG}


def test_each_pattern_buzzes_its_pulses_and_leaves_the_motor_off(factory, waits):
    pin = factory.pin(MOTOR_PIN)
    with Haptics(MOTOR_PIN, unit=UNIT, pin_factory=factory) as haptics:
        assert pin.state is False  # off from the start
        felt = {}
        for label in EXPRESSIONS:
            waits.calls.clear()
            pin.clear_states()
            haptics.play(label)
            assert haptics.wait(timeout=10.0)
            assert pin.state is False
            assert [s.state for s in pin.states[1:]] == [True, False] * len(PATTERNS[label])
            felt[label] = waits.pulses(UNIT)
    assert felt == PATTERNS


@pytest.mark.parametrize("waits", [False], indirect=True)  # real waits: the pulse must really be under way
def test_play_returns_at_once_and_a_new_pattern_cuts_off_the_old(factory, waits):
    pin = factory.pin(MOTOR_PIN)
    with Haptics(MOTOR_PIN, unit=2.0, pin_factory=factory) as haptics:
        started = time.monotonic()
        haptics.play("sad")  # one 6 s pulse
        assert time.monotonic() - started < 2.0  # far less than the pattern: it plays in the background
        wait_for(lambda: pin.state is True)
        haptics.play("surprise")  # cuts sad off at once; its own first pulse is a 2 s one
        assert waits.calls == [(True, 6.0, True)]  # sad: its pulse was cut off, nothing after it
        wait_for(lambda: pin.state is True)
        haptics.close()
    assert waits.calls[1:] == [(True, 2.0, True)]  # surprise, cut off by close
    assert pin.state is False


@pytest.mark.parametrize("waits", [False], indirect=True)
def test_close_mid_pattern_stops_the_motor_for_good(factory, waits):
    pin = factory.pin(MOTOR_PIN)
    haptics = Haptics(MOTOR_PIN, unit=2.0, pin_factory=factory)
    haptics.play("angry")  # two 6 s pulses
    wait_for(lambda: pin.state is True)
    haptics.close()
    assert pin.state is False
    assert waits.calls == [(True, 6.0, True)]  # the thread ended at the cut, before any gap or second pulse
    changes = len(pin.states)
    time.sleep(0.1)
    assert len(pin.states) == changes
    haptics.close()
    with pytest.raises(RuntimeError, match="closed"):
        haptics.play("happy")
    DigitalOutputDevice(MOTOR_PIN, pin_factory=factory).close()  # the pin was released


def test_unknown_label_is_rejected_with_the_known_ones(factory):
    with pytest.raises(ValueError, match="no vibration pattern for 'noface'; known: angry, disgust"):
        pattern_for("noface")
    with Haptics(MOTOR_PIN, unit=UNIT, pin_factory=factory) as haptics:
        with pytest.raises(ValueError):
            haptics.play("bored")
        assert factory.pin(MOTOR_PIN).states[-1].state is False


def test_without_a_motor_play_checks_the_label_and_does_nothing():
    for pin in (None, ""):
        with Haptics(pin) as haptics:
            assert not haptics.enabled
            haptics.play("happy")
            assert haptics.wait(timeout=0)
            with pytest.raises(ValueError):
                haptics.play("bored")


def test_unusable_pin_is_one_clear_error(factory):
    with pytest.raises(GpioUnavailable, match="vibration motor on pin 'GPIO99' unavailable: PinInvalidPin"):
        Haptics("GPIO99", pin_factory=factory)
    with pytest.raises(ValueError, match="unit"):
        Haptics(MOTOR_PIN, unit=0, pin_factory=factory)
