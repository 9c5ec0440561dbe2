"""Buttons on gpiozero's mock pins: real Button objects and hold threads, driven by hand.

A button is wired to ground with the internal pull-up, so ``drive_low()`` is
a press and ``drive_high()`` a release. How long a press lasted is read on a
fake clock (``clock``) that the test advances, so a loaded machine cannot
stretch a short press into a long one; only the hold threshold runs on real
time, on gpiozero's own hold thread, and a press that is not a hold is over
in microseconds of real time, far from it.
"""
from __future__ import annotations

import logging
import threading
import time
from types import SimpleNamespace

import pytest
from gpiozero import Button, Device
from gpiozero.exc import GPIOPinInUse
from gpiozero.pins.mock import MockFactory

from device import buttons as buttons_module
from device.buttons import Buttons, PressGesture
from device.config import ButtonsConfig
from device.gpio import GpioUnavailable
from device.inbox import Inbox, Press, Request
from device.presses import press_buttons

LONG = 0.2
HOLD = 0.5
SHORT_PRESS = 0.03
LONG_PRESS = 0.35  # between LONG and HOLD
SETTLE = 0.15  # past the hold threshold, to show that nothing fires late


class FakeClock:
    """``time.monotonic`` for :mod:`device.buttons`: moves only when the test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


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


@pytest.fixture(autouse=True)
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(buttons_module, "time", SimpleNamespace(monotonic=fake))
    return fake


def make_buttons(rec: Recorder, factory: MockFactory, **pins) -> Buttons:
    return Buttons(rec.repeat, rec.mute, rec.status, long_press=LONG, status_hold=HOLD,
                   pin_factory=factory, **pins)


def press(pin, seconds: float, clock: FakeClock) -> None:
    """Down for ``seconds`` on the fake clock: no real time passes."""
    pin.drive_low()
    clock.advance(seconds)
    pin.drive_high()


def test_one_button_short_press_repeats_only(factory, rec, clock):
    with make_buttons(rec, factory, repeat_pin=17) as buttons:
        assert buttons.layout == "one"
        press(factory.pin(17), SHORT_PRESS, clock)
        assert rec.events == ["repeat"]
        time.sleep(HOLD + SETTLE)
        assert rec.events == ["repeat"]


def test_one_button_each_short_press_repeats_once(factory, rec, clock):
    with make_buttons(rec, factory, repeat_pin="GPIO17"):
        for _ in range(3):
            press(factory.pin(17), SHORT_PRESS, clock)
        assert rec.events == ["repeat"] * 3


def test_one_button_long_press_toggles_mute_without_repeat(factory, rec, clock):
    with make_buttons(rec, factory, repeat_pin=17):
        pin = factory.pin(17)
        pin.drive_low()
        clock.advance(LONG_PRESS)
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


@pytest.mark.parametrize("down_for, with_long, fired", [
    (0.0, True, "short"), (LONG - 0.001, True, "short"), (LONG, True, "long"), (HOLD - 0.001, True, "long"),
    (HOLD, True, "hold"),  # a release that beat gpiozero's hold thread to the lock is still a hold
    (LONG_PRESS, False, "short"),  # two buttons: no long press on A
])
def test_a_press_is_sorted_by_its_length_on_the_clock(clock, down_for, with_long, fired):
    events: list[str] = []
    gesture = PressGesture("button", on_short=lambda: events.append("short"),
                           on_long=(lambda: events.append("long")) if with_long else None,
                           on_hold=lambda: events.append("hold"), long_press=LONG, status_hold=HOLD)
    gesture.pressed()
    clock.advance(down_for)
    gesture.released()
    gesture.held()  # the hold thread, late: the press is decided already
    assert events == [fired]


def test_a_hold_decides_the_press_and_its_release_adds_nothing(clock):
    events: list[str] = []
    gesture = PressGesture("button", on_short=lambda: events.append("short"), on_long=lambda: events.append("long"),
                           on_hold=lambda: events.append("hold"), long_press=LONG, status_hold=HOLD)
    gesture.released()  # a release with no press seen (held since before start-up): nothing
    gesture.pressed()
    clock.advance(HOLD)
    gesture.held()
    clock.advance(5.0)
    gesture.released()
    assert events == ["hold"]


def test_two_buttons_repeat_and_status_on_a_mute_on_b(factory, rec, clock):
    with make_buttons(rec, factory, repeat_pin=17, mute_pin=27) as buttons:
        assert buttons.layout == "two"
        a, b = factory.pin(17), factory.pin(27)
        press(a, SHORT_PRESS, clock)
        press(a, LONG_PRESS, clock)  # no mute on A: anything short of a hold repeats
        assert rec.events == ["repeat", "repeat"]

        a.drive_low()
        assert rec.status_fired.wait(HOLD + 2.0)
        a.drive_high()
        assert rec.events == ["repeat", "repeat", "status"]

        b.drive_low()
        assert rec.events == ["repeat", "repeat", "status", "mute"]  # on press, not on release
        clock.advance(LONG_PRESS)
        b.drive_high()
        assert rec.events == ["repeat", "repeat", "status", "mute"]


def test_failing_callbacks_are_logged_and_both_threads_keep_serving(factory, caplog, clock):
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
            press(pin, SHORT_PRESS, clock)
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


def test_presses_are_queued_in_order_for_the_loop(factory, clock):
    presses = Inbox()
    cfg = ButtonsConfig(repeat_pin="GPIO17", long_press=LONG, status_hold=HOLD, double_press=0.1)
    with press_buttons(cfg, presses, pin_factory=factory) as buttons:
        assert buttons.layout == "one"
        pin = factory.pin(17)
        press(pin, SHORT_PRESS, clock)
        press(pin, LONG_PRESS, clock)
        pin.drive_low()  # the hold thread posts STATUS while the button is down
        got: list[Press] = []
        deadline = time.monotonic() + HOLD + 2.0
        while len(got) < 3 and time.monotonic() < deadline:
            got += presses.wait(deadline - time.monotonic())
        pin.drive_high()
    assert got == [Press.REPEAT, Press.MUTE, Press.STATUS]
    assert presses.wait(0) == []  # nothing more: the release after the hold adds nothing


def test_an_event_from_another_thread_ends_a_wait_at_once():
    inbox = Inbox()
    threading.Timer(0.1, inbox.post, (Request.STOP,)).start()
    start = time.monotonic()
    assert inbox.wait(10.0) == [Request.STOP]
    assert time.monotonic() - start < 2.0


def test_unusable_gpio_leaves_the_device_without_buttons_and_says_so(monkeypatch, caplog):
    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-gpio-driver")
    caplog.set_level(logging.INFO, logger="facecue")
    with press_buttons(ButtonsConfig(repeat_pin="GPIO17"), Inbox()) as buttons:
        assert buttons.layout == "none"
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith("buttons disabled: repeat button on pin 'GPIO17' unavailable")


DOUBLE = 0.3  # real seconds: the window for a second short press


def gesture_with_double(events: list[str]) -> PressGesture:
    return PressGesture("button", on_short=lambda: events.append("short"), on_long=lambda: events.append("long"),
                        on_hold=lambda: events.append("hold"), long_press=LONG, status_hold=HOLD,
                        on_double=lambda: events.append("double"), double_press=DOUBLE)


def test_two_short_presses_within_the_window_are_one_double_press(clock):
    events: list[str] = []
    gesture = gesture_with_double(events)
    for _ in range(2):
        gesture.pressed()
        clock.advance(SHORT_PRESS)
        gesture.released()
    assert events == ["double"]
    time.sleep(DOUBLE + SETTLE)
    assert events == ["double"]  # the first press's timer was cancelled


def test_a_lone_short_press_repeats_once_the_window_has_passed(clock):
    events: list[str] = []
    gesture = gesture_with_double(events)
    gesture.pressed()
    clock.advance(SHORT_PRESS)
    gesture.released()
    assert events == []
    time.sleep(DOUBLE + SETTLE)
    assert events == ["short"]


@pytest.mark.parametrize("down_for, then", [(LONG_PRESS, "long"), (HOLD, "hold")])
def test_a_long_second_press_lets_the_first_repeat_then_acts(clock, down_for, then):
    events: list[str] = []
    gesture = gesture_with_double(events)
    gesture.pressed()
    clock.advance(SHORT_PRESS)
    gesture.released()
    gesture.pressed()
    clock.advance(down_for)
    gesture.released()
    assert events == ["short", then]


def test_one_button_double_press_asks_who_is_there_through_the_queue(factory, clock):
    presses = Inbox()
    cfg = ButtonsConfig(repeat_pin="GPIO17", long_press=LONG, status_hold=HOLD, double_press=DOUBLE)
    with press_buttons(cfg, presses, pin_factory=factory):
        pin = factory.pin(17)
        press(pin, SHORT_PRESS, clock)
        press(pin, SHORT_PRESS, clock)
        assert presses.wait(0) == [Press.PEOPLE]
        press(pin, SHORT_PRESS, clock)
        assert presses.wait(DOUBLE + 2.0) == [Press.REPEAT]


def test_no_double_press_window_means_a_short_press_repeats_at_once(factory, rec, clock):
    people: list[str] = []
    with Buttons(rec.repeat, rec.mute, rec.status, on_people=lambda: people.append("people"), repeat_pin=17,
                 long_press=LONG, status_hold=HOLD, double_press=0.0, pin_factory=factory):
        press(factory.pin(17), SHORT_PRESS, clock)
        press(factory.pin(17), SHORT_PRESS, clock)
    assert rec.events == ["repeat", "repeat"] and people == []
