"""Buttons on gpiozero's mock pins: real Button objects and hold threads, driven by hand.

A button is wired to ground with the internal pull-up, so ``drive_low()`` is
a press and ``drive_high()`` a release. Timings are scaled down (long press
0.2 s, hold 0.5 s) and every sleep keeps at least 0.15 s from a threshold,
so a loaded machine does not flip a press into the next category.
"""
from __future__ import annotations

import logging
import threading
import time

import pytest
from gpiozero import Button, Device
from gpiozero.exc import GPIOPinInUse
from gpiozero.pins.mock import MockFactory

from device.buttons import Buttons
from device.config import ButtonsConfig
from device.gpio import GpioUnavailable
from device.presses import Press, PressQueue, press_buttons

LONG = 0.2
HOLD = 0.5
SHORT_PRESS = 0.03
LONG_PRESS = 0.35  # between LONG and HOLD with 0.15 s to spare each side
SETTLE = 0.15  # past the hold threshold, to show that nothing fires late


class Recorder:
    """The three callbacks, recording what fired; ``status`` is signalled for hold tests."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.status_fired = threading.Event()

    def repeat(self) -> None:
        self.events.append("repeat")

    def mute(self) -> None:
        self.events.append("mute")

    def status(self) -> None:
        self.events.append("status")
        self.status_fired.set()


@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.reset()


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


def make_buttons(rec: Recorder, factory: MockFactory, **pins) -> Buttons:
    return Buttons(rec.repeat, rec.mute, rec.status, long_press=LONG, status_hold=HOLD,
                   pin_factory=factory, **pins)


def press(pin, seconds: float) -> None:
    pin.drive_low()
    time.sleep(seconds)
    pin.drive_high()


def test_one_button_short_press_repeats_only(factory, rec):
    with make_buttons(rec, factory, repeat_pin=17) as buttons:
        assert buttons.layout == "one"
        press(factory.pin(17), SHORT_PRESS)
        assert rec.events == ["repeat"]
        time.sleep(HOLD + SETTLE)
        assert rec.events == ["repeat"]


def test_one_button_each_short_press_repeats_once(factory, rec):
    with make_buttons(rec, factory, repeat_pin="GPIO17"):
        for _ in range(3):
            press(factory.pin(17), SHORT_PRESS)
            time.sleep(0.02)
        assert rec.events == ["repeat"] * 3


def test_one_button_long_press_toggles_mute_without_repeat(factory, rec):
    with make_buttons(rec, factory, repeat_pin=17):
        pin = factory.pin(17)
        pin.drive_low()
        time.sleep(LONG_PRESS)
        assert rec.events == []  # a long press is decided on release, not when it crosses LONG
        pin.drive_high()
        assert rec.events == ["mute"]
        time.sleep(HOLD - LONG_PRESS + SETTLE)
        assert rec.events == ["mute"]


def test_one_button_hold_speaks_status_while_held_and_release_adds_nothing(factory, rec):
    with make_buttons(rec, factory, repeat_pin=17):
        pin = factory.pin(17)
        start = time.monotonic()
        pin.drive_low()
        assert rec.status_fired.wait(HOLD + 2.0), "status never fired during the hold"
        assert time.monotonic() - start >= HOLD * 0.95
        assert pin.state is False  # still held down when status fired
        assert rec.events == ["status"]
        pin.drive_high()
        time.sleep(0.05)
        assert rec.events == ["status"]


def test_two_buttons_repeat_and_status_on_a_mute_on_b(factory, rec):
    with make_buttons(rec, factory, repeat_pin=17, mute_pin=27) as buttons:
        assert buttons.layout == "two"
        a, b = factory.pin(17), factory.pin(27)
        press(a, SHORT_PRESS)
        press(a, LONG_PRESS)  # no mute on A: anything short of a hold repeats
        assert rec.events == ["repeat", "repeat"]

        a.drive_low()
        assert rec.status_fired.wait(HOLD + 2.0)
        a.drive_high()
        assert rec.events == ["repeat", "repeat", "status"]

        b.drive_low()
        assert rec.events == ["repeat", "repeat", "status", "mute"]  # on press, not on release
        time.sleep(LONG_PRESS)
        b.drive_high()
        assert rec.events == ["repeat", "repeat", "status", "mute"]


def test_failing_callbacks_are_logged_and_both_threads_keep_serving(factory, caplog):
    events: list[str] = []
    held = threading.Semaphore(0)

    def repeat() -> None:
        events.append("repeat")
        raise RuntimeError("speaker gone")

    def status() -> None:
        events.append("status")
        held.release()
        raise RuntimeError("no model")

    caplog.set_level(logging.ERROR, logger="device.buttons")
    with Buttons(repeat, lambda: events.append("mute"), status, repeat_pin=17, long_press=LONG, status_hold=HOLD,
                 pin_factory=factory):
        pin = factory.pin(17)
        for _ in range(2):  # the edge thread (here the caller's) survives a failing callback
            press(pin, SHORT_PRESS)
        for _ in range(2):  # so does gpiozero's hold thread
            pin.drive_low()
            assert held.acquire(timeout=HOLD + 2.0), "hold thread stopped serving"
            pin.drive_high()
    assert events == ["repeat", "repeat", "status", "status"]
    failures = [r.getMessage() for r in caplog.records]
    assert failures == ["button press callback failed"] * 2 + ["button hold callback failed"] * 2


def test_pins_are_pulled_up_debounced_and_released_on_close(factory, rec):
    buttons = Buttons(rec.repeat, rec.mute, rec.status, repeat_pin=17, mute_pin="BOARD13",
                      bounce_time=0.02, pin_factory=factory)
    for pin in (factory.pin(17), factory.pin(27)):
        assert pin.pull == "up"
        assert pin.bounce == pytest.approx(0.02)
    with pytest.raises(GPIOPinInUse):
        Button(17, pin_factory=factory)
    buttons.close()
    buttons.close()
    assert buttons.layout == "none"
    Button(17, pin_factory=factory).close()
    Button(27, pin_factory=factory).close()


def test_no_pins_means_no_buttons(factory, rec):
    for pins in ({}, {"repeat_pin": None, "mute_pin": None}, {"repeat_pin": "", "mute_pin": ""}):
        with make_buttons(rec, factory, **pins) as buttons:
            assert buttons.layout == "none"
    assert not factory.pins  # nothing was claimed


def test_no_gpio_on_this_machine_is_one_clear_error(monkeypatch, rec):
    monkeypatch.setattr(Device, "pin_factory", None)  # force gpiozero's own driver search
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-gpio-driver")
    with pytest.raises(GpioUnavailable) as err:
        Buttons(rec.repeat, rec.mute, rec.status, repeat_pin=17)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("repeat button on pin 17 unavailable: BadPinFactory")


def test_unusable_second_pin_releases_the_first(factory, rec):
    with pytest.raises(GpioUnavailable, match="mute button on pin 'GPIO99' unavailable"):
        make_buttons(rec, factory, repeat_pin=17, mute_pin="GPIO99")
    with pytest.raises(GpioUnavailable, match="mute button on pin 17 unavailable: GPIOPinInUse"):
        make_buttons(rec, factory, repeat_pin=17, mute_pin=17)
    Button(17, pin_factory=factory).close()  # both failures left pin 17 free


@pytest.mark.parametrize("kwargs, message", [
    ({"long_press": 3.0, "status_hold": 3.0}, "long_press < status_hold"),
    ({"long_press": 0.0}, "long_press < status_hold"),
    ({"bounce_time": -0.1}, "bounce_time"),
    ({"mute_pin": 27}, "needs a repeat_pin"),
])
def test_bad_settings_are_rejected_before_touching_gpio(factory, rec, kwargs, message):
    with pytest.raises(ValueError, match=message):
        Buttons(rec.repeat, rec.mute, rec.status, pin_factory=factory, **kwargs)
    assert not factory.pins


def test_presses_are_queued_in_order_for_the_loop(factory):
    presses = PressQueue()
    cfg = ButtonsConfig(repeat_pin="GPIO17", long_press=LONG, status_hold=HOLD)
    with press_buttons(cfg, presses, pin_factory=factory) as buttons:
        assert buttons.layout == "one"
        pin = factory.pin(17)
        press(pin, SHORT_PRESS)
        press(pin, LONG_PRESS)
        pin.drive_low()  # the hold thread posts STATUS while the button is down
        got: list[Press] = []
        deadline = time.monotonic() + HOLD + 2.0
        while len(got) < 3 and time.monotonic() < deadline:
            got += presses.wait(deadline - time.monotonic())
        pin.drive_high()
    assert got == [Press.REPEAT, Press.MUTE, Press.STATUS]
    assert presses.wait(0) == []  # nothing more: the release after the hold adds nothing


def test_a_wake_ends_a_wait_at_once_and_is_no_press():
    presses = PressQueue()
    threading.Timer(0.1, presses.wake).start()
    start = time.monotonic()
    assert presses.wait(10.0) == []
    assert time.monotonic() - start < 2.0


def test_unusable_gpio_leaves_the_device_without_buttons_and_says_so(monkeypatch, caplog):
    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-gpio-driver")
    caplog.set_level(logging.INFO, logger="facecue")
    with press_buttons(ButtonsConfig(repeat_pin="GPIO17"), PressQueue()) as buttons:
        assert buttons.layout == "none"
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith("buttons disabled: repeat button on pin 'GPIO17' unavailable")
