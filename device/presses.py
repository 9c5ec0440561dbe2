"""The wearer's buttons, posting their presses to the loop's inbox.

The buttons' callbacks run on gpiozero's threads; they only post a
:class:`~device.inbox.Press` to the :class:`~device.inbox.Inbox`, and the
loop answers it on its own thread (see :mod:`device.inbox`).
"""
from __future__ import annotations

import functools
import logging

from device.buttons import Buttons
from device.config import ButtonsConfig
from device.gpio import GpioUnavailable
from device.inbox import Inbox, Press

log = logging.getLogger("facecue")


def press_buttons(cfg: ButtonsConfig, inbox: Inbox, pin_factory: object | None = None) -> Buttons:
    """The ``[buttons]`` of the config, posting their presses to ``inbox``.

    A GPIO that cannot be claimed is logged once and leaves the device without
    buttons (layout "none"): it still speaks, it only cannot be asked.
    ``pin_factory`` is for tests (gpiozero's ``MockFactory``).
    """
    callbacks = [functools.partial(inbox.post, press) for press in (Press.REPEAT, Press.MUTE, Press.STATUS)]
    try:
        buttons = Buttons(*callbacks, on_people=functools.partial(inbox.post, Press.PEOPLE),
                          repeat_pin=cfg.repeat_pin, mute_pin=cfg.mute_pin, long_press=cfg.long_press,
                          status_hold=cfg.status_hold, bounce_time=cfg.bounce_time, double_press=cfg.double_press,
                          pin_factory=pin_factory)
    except GpioUnavailable as exc:
        log.error("buttons disabled: %s", exc)
        return Buttons(*callbacks)
    if buttons.layout != "none":
        log.info("buttons: %s-button layout", buttons.layout)
    return buttons
