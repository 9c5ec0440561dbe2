"""The shipped unit is valid, hardened (exposure <= 1.0), writes nothing and matches what the daemon expects."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from device.config import DEFAULT_CONFIG_PATH

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd" / "facecue.service"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
MAX_EXPOSURE = 1.0
INSTALL = ROOT / "install.sh"


def unit_settings(text: str) -> dict[str, list[str]]:
    """Key -> every value it is given (systemd allows repeating keys such as DeviceAllow)."""
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def _runnable_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart's binary swapped for one that exists here, since
    `verify` rejects a missing binary and /opt/facecue only exists on a device."""
    text = UNIT.read_text()
    binary = unit_settings(text)["ExecStart"][0].split()[0]
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(f"ExecStart={binary} ", f"ExecStart={shutil.which('true')} "))
    return copy


@needs_analyze
def test_unit_verifies_without_warnings(tmp_path: Path) -> None:
    copy = _runnable_copy(tmp_path)
    result = subprocess.run([ANALYZE, "verify", str(copy)], capture_output=True, text=True, timeout=120)
    ours = [line for line in (result.stdout + result.stderr).splitlines() if "facecue" in line]
    assert result.returncode == 0 and not ours, "\n".join(ours) or result.stderr


@needs_analyze
@pytest.mark.skipif(shutil.which("awk") is None, reason="install.sh adapts units with awk")
def test_the_variant_for_old_systemd_verifies_too(tmp_path: Path) -> None:
    """What install.sh makes of the unit for systemd 229 must still be a valid unit."""
    fake = tmp_path / "bin" / "systemctl"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'systemd 229'\n")
    fake.chmod(0o755)
    adapted = subprocess.run(["bash", str(INSTALL), "--print-unit", UNIT.name], capture_output=True, text=True,
                             env={**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}, timeout=60)
    assert adapted.returncode == 0 and adapted.stdout.startswith("# install.sh: for systemd 229"), adapted.stderr
    copy = _runnable_copy(tmp_path)
    binary = unit_settings(adapted.stdout)["ExecStart"][0].split()[0]
    copy.write_text(adapted.stdout.replace(binary, shutil.which("true")))
    result = subprocess.run([ANALYZE, "verify", str(copy)], capture_output=True, text=True, timeout=120)
    ours = [line for line in (result.stdout + result.stderr).splitlines() if "facecue" in line]
    assert result.returncode == 0 and not ours, "\n".join(ours) or result.stderr


@needs_analyze
def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """Guards the test above: a typo in a key must show up in what it inspects."""
    copy = _runnable_copy(tmp_path)
    copy.write_text(copy.read_text().replace("ProtectSystem=", "ProtectSystme="))
    result = subprocess.run([ANALYZE, "verify", str(copy)], capture_output=True, text=True, timeout=120)
    assert "ProtectSystme" in result.stdout + result.stderr


def exposure(unit: Path) -> float:
    result = subprocess.run([ANALYZE, "security", "--offline=yes", "--no-pager", str(unit)],
                            capture_output=True, text=True, timeout=120)
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, f"no exposure line in systemd-analyze output: {result.stderr.strip()}"
    return float(match.group(1))


@needs_analyze
def test_security_exposure_is_low() -> None:
    assert exposure(UNIT) <= MAX_EXPOSURE


@needs_analyze
def test_exposure_rises_without_hardening(tmp_path: Path) -> None:
    """The parser reads a real score: the same unit without its sandbox scores worse."""
    kept = ("[", "Type=", "ExecStart=", "User=", "Group=", "Description=", "WantedBy=")
    bare = [line for line in UNIT.read_text().splitlines() if line.startswith(kept)]
    copy = tmp_path / UNIT.name
    copy.write_text("\n".join(bare) + "\n")
    assert exposure(copy) > MAX_EXPOSURE


def test_unit_matches_the_daemon_contract() -> None:
    s = unit_settings(UNIT.read_text())
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]  # device.loop sends READY=1
    assert s["Restart"] == ["always"]
    watchdog = int(s["WatchdogSec"][0].removesuffix("s"))
    assert 4 <= watchdog <= 120  # the loop pings at half of it, and between camera retries
    assert float(s["TimeoutStopSec"][0].removesuffix("s")) <= 2.0
    assert s["KillSignal"] == ["SIGTERM"]
    argv = s["ExecStart"][0].split()
    assert argv[0].endswith("/bin/facecue") and argv[1:3] == ["run", "--config"]
    assert argv[3] == str(DEFAULT_CONFIG_PATH)
    assert s["User"] == ["facecue"]
    assert s["WorkingDirectory"] == ["/var/lib/facecue"]  # install.sh makes it; the daemon only reads there


def test_daemon_can_write_nowhere() -> None:
    """It parses camera input: it reads the model store that facecue-sync.service writes, and writes nothing."""
    s = unit_settings(UNIT.read_text())
    assert s["ProtectSystem"] == ["strict"] and s["ProtectHome"] == ["yes"]
    writable = ("StateDirectory", "ReadWritePaths", "ReadWriteDirectories", "CacheDirectory", "LogsDirectory",
                "RuntimeDirectory")
    assert not [key for key in writable if key in s]


def test_unit_reaches_only_camera_sound_and_gpio() -> None:
    s = unit_settings(UNIT.read_text())
    assert s["DevicePolicy"] == ["closed"]
    classes = {entry.split()[0] for entry in s["DeviceAllow"]}
    assert classes == {"char-video4linux", "char-media", "char-dma_heap", "char-alsa",
                       "char-gpiochip", "char-bcm2835-gpiomem", "char-rpi-gpiomem"}
    assert s["PrivateNetwork"] == ["yes"] and s["RestrictAddressFamilies"] == ["AF_UNIX"]
