"""install.sh: valid bash, clear errors, and a --dry-run that names every step and changes nothing.

A real install takes minutes and needs root, so it is not run here; the dry
runs use a copy of the checkout so that "would create ./.venv" is what they
must say whatever state the real checkout is in.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "install.sh"
UNIT = ROOT / "systemd" / "facecue.service"
SYSTEM_PATHS = [Path(p) for p in ("/opt/facecue", "/etc/facecue", "/etc/systemd/system/facecue.service",
                                  "/usr/local/bin/facecue", "/var/lib/facecue")]
can_install_service = pytest.mark.skipif(
    shutil.which("systemctl") is None or (os.geteuid() != 0 and shutil.which("sudo") is None),
    reason="the service dry run needs systemctl and root or sudo")


def run_script(*args: str, cwd: Path = ROOT, script: Path = SCRIPT,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(script), *args], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env={**os.environ, "CI": "true", **(env or {})},
                          timeout=120)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The files install.sh reads, without a .venv."""
    copy = tmp_path / "facecue"
    (copy / "systemd").mkdir(parents=True)
    for name in ("install.sh", "pyproject.toml", "systemd/facecue.service"):
        shutil.copy2(ROOT / name, copy / name)
    return copy


def system_state() -> dict[Path, bool]:
    return {p: p.exists() or p.is_symlink() for p in SYSTEM_PATHS}


def test_bash_syntax() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True, timeout=30)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shellcheck_is_clean() -> None:
    result = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def test_help_lists_every_option() -> None:
    result = run_script("--help")
    assert result.returncode == 0
    for option in ("--no-service", "--uninstall", "--purge", "--extras", "--dry-run", "--help"):
        assert option in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "unknown option '--bogus'"),
    (["--extras"], "--extras needs a value"),
    (["--extras", "dev;rm"], "--extras must look like"),
    (["--purge"], "--purge only goes with --uninstall"),
    (["--dry-run", "--no-service", "--extras", "dev,nope"], "unknown pip extra nope"),
])
def test_bad_input_is_one_line_error(args: list[str], message: str, checkout: Path) -> None:
    result = run_script(*args, script=checkout / "install.sh")
    assert result.returncode != 0
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("install.sh: error:") and message in errors[0]
    assert not (checkout / ".venv").exists()


def test_dry_run_no_service_names_the_steps_and_changes_nothing(checkout: Path) -> None:
    before = system_state()
    result = run_script("--dry-run", "--no-service", "--extras", "dev,cloud", script=checkout / "install.sh")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "dry run: nothing will be changed" in out
    assert "==> apt packages: " in out and "portaudio19-dev" in out
    assert f"-m venv {checkout / '.venv'}" in out
    pip = [line for line in out.splitlines() if "pip install -e" in line]
    assert len(pip) == 1 and str(checkout) in pip[0] and "dev" in pip[0] and "cloud" in pip[0]
    assert "useradd" not in out and "systemctl" not in out  # --no-service touches nothing system-wide
    assert not (checkout / ".venv").exists()
    assert system_state() == before


def test_dry_run_on_a_pi_uses_apt_camera_and_system_site_packages(checkout: Path) -> None:
    result = run_script("--dry-run", "--no-service", script=checkout / "install.sh",
                        env={"FACECUE_PLATFORM": "pi"})
    assert result.returncode == 0, result.stderr
    assert "on Raspberry Pi" in result.stdout
    assert "python3-picamera2" in result.stdout
    assert "--system-site-packages" in result.stdout


@can_install_service
def test_dry_run_service_names_the_steps_and_changes_nothing(checkout: Path) -> None:
    before = system_state()
    result = run_script("--dry-run", script=checkout / "install.sh")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for step in ("==> apt packages", "==> system user facecue", "==> virtual environment /opt/facecue/venv",
                 "==> package facecue[cloud] into /opt/facecue/venv", "==> config /etc/facecue/config.toml",
                 "==> systemd units", "==> enable"):
        assert step in out
    assert "model sync timer not installed" in out
    assert system_state() == before


@can_install_service
def test_service_runs_the_binary_the_installer_links(checkout: Path) -> None:
    """The unit's ExecStart and install.sh's venv must agree, or the service never starts."""
    result = run_script("--dry-run", script=checkout / "install.sh")
    binary = re.search(r"^ExecStart=(\S+)", UNIT.read_text(), re.MULTILINE).group(1)
    assert f"/usr/local/bin/facecue -> {binary}" in result.stdout


@can_install_service
def test_sync_timer_is_installed_and_enabled_when_present(checkout: Path) -> None:
    for name in ("facecue-sync.service", "facecue-sync.timer"):
        (checkout / "systemd" / name).write_text("[Unit]\nDescription=placeholder\n")
    result = run_script("--dry-run", script=checkout / "install.sh")
    assert result.returncode == 0, result.stderr
    assert "facecue-sync.service" in result.stdout
    timer = "/etc/systemd/system/facecue-sync.timer"
    assert timer in result.stdout or f"{timer} is up to date" in result.stdout
    assert "enable facecue-sync.timer" in result.stdout or "facecue-sync.timer is enabled" in result.stdout


def test_dry_run_uninstall_changes_nothing(checkout: Path) -> None:
    (checkout / ".venv").mkdir()  # a venv install.sh did not make must survive --uninstall
    before = system_state()
    result = run_script("--dry-run", "--uninstall", "--purge", script=checkout / "install.sh")
    assert result.returncode == 0, result.stderr
    assert "==> systemd units" in result.stdout and "==> system user facecue" in result.stdout
    assert "not made by install.sh: kept" in result.stdout
    assert (checkout / ".venv").exists()
    assert system_state() == before
