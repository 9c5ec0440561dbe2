"""Vibration patterns read back from a gpiozero mock pin's state history.

``MockPin.states`` records every change with the time since the previous
one, so the on-times of the motor can be measured and sorted into short and
long pulses; a unit of 0.04 s leaves 0.04 s either side of the split.
"""
from __future__ import annotations

import time
from itertools import pairwise

import pytest
from gpiozero import DigitalOutputDevice
from gpiozero.pins.mock import MockFactory

from device.gpio import GpioUnavailable
from device.haptics import LONG, PATTERNS, SHORT, Haptics, pattern_for

EXPRESSIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
UNIT = 0.04
MOTOR_PIN = 18


@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.reset()


def on_times(pin) -> list[float]:
    """Seconds the motor was on, pulse by pulse, from the pin's recorded changes."""
    return [now.timestamp for before, now in pairwise(pin.states) if before.state and not now.state]


def as_units(seconds: list[float], unit: float) -> tuple[int, ...]:
    split = (SHORT + LONG) / 2 * unit
    return tuple(LONG if s > split else SHORT for s in seconds)


def test_every_expression_has_its_own_pattern():
    assert tuple(PATTERNS) == EXPRESSIONS
    assert len(set(PATTERNS.values())) == len(EXPRESSIONS)
    for pulses in PATTERNS.values():
        assert pulses and set(pulses) <= {SHORT, LONG}


def test_each_pattern_buzzes_its_pulses_and_leaves_the_motor_off(factory):
    pin = factory.pin(MOTOR_PIN)
    with Haptics(MOTOR_PIN, unit=UNIT, pin_factory=factory) as haptics:
        assert pin.state is False  # off from the start
        felt = {}
        for label in EXPRESSIONS:
            pin.clear_states()
            haptics.play(label)
            assert haptics.wait(timeout=3.0)
            assert pin.state is False
            felt[label] = as_units(on_times(pin), UNIT)
    assert felt == PATTERNS


def test_play_returns_at_once_and_a_new_pattern_cuts_off_the_old(factory):
    pin = factory.pin(MOTOR_PIN)
    with Haptics(MOTOR_PIN, unit=0.1, pin_factory=factory) as haptics:
        started = time.monotonic()
        haptics.play("sad")  # one 0.3 s pulse
        assert time.monotonic() - started < 0.1
        time.sleep(0.05)
        assert pin.state is True
        haptics.play("neutral")  # one 0.1 s pulse
        assert haptics.wait(timeout=3.0)
    first, second = on_times(pin)
    assert first < 0.2  # sad was cut short
    assert second == pytest.approx(0.1, abs=0.05)
    assert pin.state is False


def test_close_mid_pattern_stops_the_motor_for_good(factory):
    pin = factory.pin(MOTOR_PIN)
    haptics = Haptics(MOTOR_PIN, unit=0.1, pin_factory=factory)
    haptics.play("angry")
    time.sleep(0.05)
    assert pin.state is True
    haptics.close()
    assert pin.state is False
    changes = len(pin.states)
    time.sleep(0.3)  # past where angry's first pulse would have ended
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
