"""A dependency-free sd_notify client: READY, WATCHDOG, STATUS and STOPPING.

systemd starts the daemon as ``Type=notify`` with a watchdog, so it must say
when it is ready (after the model is loaded) and keep pinging while the loop
is alive; a hung loop then gets restarted instead of leaving the wearer in
silence. The protocol is one datagram of ``KEY=value`` lines to the unix
socket named in ``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract
namespace), which is small enough not to need the ``systemd`` Python package.

Outside systemd (a laptop, tests, CI) ``$NOTIFY_SOCKET`` is unset and every
call is a no-op. A failing send never raises into the loop: losing a ping is
better than crashing the device, so the first failure is logged and the rest
are dropped quietly.
"""
from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("facecue")


def _socket_address(value: str) -> str | None:
    """The ``$NOTIFY_SOCKET`` value as a Python AF_UNIX address, or None if unusable."""
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def _watchdog_seconds(usec: str, pid: str) -> float | None:
    """Seconds from ``WATCHDOG_USEC`` when it is meant for this process, else None.

    systemd sets ``WATCHDOG_PID`` so that a child which inherited the
    environment does not mistake the parent's watchdog for its own.
    """
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None


class Notifier:
    """Talks to systemd's notify socket named by the environment at construction."""

    def __init__(self) -> None:
        raw = os.environ.get("NOTIFY_SOCKET", "")
        self._raw = raw
        self._address = _socket_address(raw)
        self._interval = _watchdog_seconds(os.environ.get("WATCHDOG_USEC", ""),
                                           os.environ.get("WATCHDOG_PID", ""))
        self._sock: socket.socket | None = None
        self._warned = False  # log the first failed send only
        if raw and self._address is None:
            log.warning("sd_notify: ignoring unsupported NOTIFY_SOCKET %r", raw)

    def ready(self) -> bool:
        """Start-up is done: systemd marks the unit active and starts dependants."""
        return self.notify("READY=1")

    def watchdog(self) -> bool:
        """Proof of life; must arrive more often than ``WatchdogSec``."""
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """A one-line status shown by ``systemctl status facecue``."""
        return self.notify("STATUS=" + " ".join(text.split()))

    def stopping(self) -> bool:
        """Shutdown has begun, so systemd does not count it as a hang."""
        return self.notify("STOPPING=1")

    def watchdog_interval(self) -> float | None:
        """``WatchdogSec`` in seconds when the watchdog is on for us, else None."""
        return self._interval if self._address is not None else None

    def notify(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields in one datagram; True if delivered, never raises."""
        if self._address is None:
            return False
        try:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                sock.setblocking(False)  # a full socket queue must not stall the loop
                self._sock = sock
            self._sock.sendto("\n".join(fields).encode(), self._address)
            return True
        except OSError as exc:
            if not self._warned:
                log.warning("sd_notify to %s failed: %s (further failures not logged)",
                            self._raw, exc)
                self._warned = True
            return False
