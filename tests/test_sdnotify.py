"""sd_notify messages arrive on a real unix datagram socket, as systemd would read them."""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from device.sdnotify import Notifier

ROOT = Path(__file__).resolve().parents[1]


def _receiver(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


@pytest.fixture
def path_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A notify socket on the file system, named in $NOTIFY_SOCKET like systemd does."""
    address = str(tmp_path / "notify")
    sock = _receiver(address)
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    yield sock
    sock.close()


@pytest.fixture
def abstract_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A notify socket in the abstract namespace ($NOTIFY_SOCKET starts with '@')."""
    name = f"facecue-test-{uuid.uuid4().hex}"
    sock = _receiver("\0" + name)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    yield sock
    sock.close()


def test_ready_watchdog_status_stopping_arrive_in_order(path_socket: socket.socket) -> None:
    n = Notifier()
    assert n.ready() and n.watchdog() and n.status("camera error;\nretrying in 4s") and n.stopping()
    got = [path_socket.recv(4096).decode() for _ in range(4)]
    assert got == ["READY=1", "WATCHDOG=1", "STATUS=camera error; retrying in 4s", "STOPPING=1"]


def test_abstract_namespace_socket(abstract_socket: socket.socket) -> None:
    assert Notifier().ready()
    assert abstract_socket.recv(4096) == b"READY=1"


def test_child_process_notifies_through_its_environment(path_socket: socket.socket) -> None:
    """The daemon reads $NOTIFY_SOCKET from the environment systemd starts it with."""
    code = "from device.sdnotify import Notifier; n = Notifier(); n.ready(); n.status('serving')"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    assert path_socket.recv(4096) == b"READY=1"
    assert path_socket.recv(4096) == b"STATUS=serving"


def test_no_socket_means_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    n = Notifier()
    assert not n.ready() and not n.watchdog() and not n.stopping()
    assert n.watchdog_interval() is None


def test_unusable_socket_never_raises_and_logs_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    n = Notifier()
    with caplog.at_level(logging.WARNING, logger="facecue"):
        results = [n.ready(), n.watchdog(), n.watchdog(), n.stopping()]
    assert results == [False] * 4
    assert len([r for r in caplog.records if "sd_notify" in r.getMessage()]) == 1


def test_relative_socket_path_is_rejected_with_a_warning(monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "relative/notify")
    with caplog.at_level(logging.WARNING, logger="facecue"):
        n = Notifier()
    assert not n.ready()
    assert "unsupported NOTIFY_SOCKET" in caplog.text


@pytest.mark.parametrize("usec, pid, expected", [
    ("30000000", None, 30.0),
    ("30000000", "self", 30.0),
    ("30000000", "other", None),   # meant for the parent that set it
    ("0", None, None),
    ("soon", None, None),
    (None, None, None),
])
def test_watchdog_interval(path_socket: socket.socket, monkeypatch: pytest.MonkeyPatch,
                           usec: str | None, pid: str | None, expected: float | None) -> None:
    for key, value in (("WATCHDOG_USEC", usec),
                       ("WATCHDOG_PID", {"self": str(os.getpid()), "other": str(os.getpid() + 1)}.get(pid or ""))):
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    assert Notifier().watchdog_interval() == expected
