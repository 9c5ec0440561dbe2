"""install.sh: valid bash, clear errors, and a --dry-run that names every step and changes nothing.

A real install takes minutes and needs root, so it is not run here (tools/emulate.sh
runs one in an emulated arm64 root); the dry runs use a copy of the checkout so that
"would create ./.venv" is what they must say whatever state the real checkout is in.
Other machines are played by small `uname`, `getconf` and `systemctl` stand-ins put
first on the PATH, and another apt source list by apt's own APT_CONFIG.
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
    """install.sh as CI runs it (no terminal, CI=true)."""
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


def stand_ins(tmp_path: Path, **outputs: str) -> dict[str, str]:
    """A PATH on which each named command (uname=..., systemctl=...) prints the given text."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in outputs.items():
        command = bin_dir / name
        command.write_text(f"#!/bin/sh\necho '{text}'\n")
        command.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def apt_sources(tmp_path: Path, line: str) -> dict[str, str]:
    """An APT_CONFIG whose only source list holds ``line``."""
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    (parts / "only.list").write_text(line + "\n")
    config = tmp_path / "apt.conf"
    config.write_text(f'Dir::Etc::sourcelist "{tmp_path / "none.list"}";\nDir::Etc::sourceparts "{parts}";\n')
    return {"APT_CONFIG": str(config)}


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single `install.sh: error:` line a refusal must consist of."""
    errors = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(errors) == 1, result.stderr
    assert errors[0].startswith("install.sh: error:")
    return errors[0]


def system_state() -> dict[Path, bool]:
    return {p: p.exists() or p.is_symlink() for p in SYSTEM_PATHS}


SHELL_SCRIPTS = [SCRIPT, ROOT / "tools" / "emulate.sh"]


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(script: Path) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_is_clean(script: Path) -> None:
    result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, timeout=60)
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
    (["--print-unit"], "--print-unit needs a unit name"),
    (["--print-unit", "../install.sh"], "no unit systemd/../install.sh"),
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


@pytest.mark.skipif(shutil.which("apt-config") is None, reason="needs apt")
def test_dry_run_on_a_pi_uses_apt_camera_system_site_packages_and_numpy_1(checkout: Path, tmp_path: Path) -> None:
    env = {"FACECUE_PLATFORM": "pi", **apt_sources(tmp_path, "deb file:/srv/raspberrypi.mirror bookworm main")}
    result = run_script("--dry-run", "--no-service", script=checkout / "install.sh", env=env)
    assert result.returncode == 0, result.stderr
    assert "on Raspberry Pi" in result.stdout
    assert "python3-picamera2" in result.stdout
    assert "--system-site-packages" in result.stdout
    pip = [line for line in result.stdout.splitlines() if "pip install -e" in line]
    assert len(pip) == 1 and pip[0].endswith(r" numpy\<2")  # apt's picamera2 stack is built against NumPy 1


@pytest.mark.skipif(shutil.which("apt-config") is None, reason="needs apt")
def test_a_pi_without_the_pi_archive_is_refused_before_apt_runs(checkout: Path, tmp_path: Path) -> None:
    env = {"FACECUE_PLATFORM": "pi", **apt_sources(tmp_path, "deb file:/srv/mirror/debian bookworm main")}
    result = run_script("--dry-run", "--no-service", script=checkout / "install.sh", env=env)
    assert "apt has no Raspberry Pi archive" in one_error(result)
    assert "apt-get" not in result.stdout


def test_off_a_pi_numpy_is_not_pinned(checkout: Path) -> None:
    result = run_script("--dry-run", "--no-service", script=checkout / "install.sh",
                        env={"FACECUE_PLATFORM": "debian"})
    assert result.returncode == 0, result.stderr
    pip = [line for line in result.stdout.splitlines() if "pip install -e" in line]
    assert len(pip) == 1 and r"numpy\<2" not in pip[0]


@pytest.mark.parametrize("machine, bits, message", [
    ("armv6l", "32", "armv6l (Pi 1, Pi Zero W) is not supported"),
    ("armv7l", "32", "32-bit ARM (armv7l) is not supported"),
    ("aarch64", "32", "a 32-bit system on a 64-bit ARM kernel is not supported"),  # 32-bit Pi OS on a Pi 4/5
])
def test_32_bit_arm_is_refused_in_one_line(machine: str, bits: str, message: str, checkout: Path,
                                            tmp_path: Path) -> None:
    env = stand_ins(tmp_path, uname=machine, getconf=bits)
    result = run_script("--dry-run", "--no-service", script=checkout / "install.sh", env=env)
    assert message in one_error(result)
    assert "==> apt packages" not in result.stdout  # before anything is looked at


def test_64_bit_arm_goes_ahead(checkout: Path, tmp_path: Path) -> None:
    env = stand_ins(tmp_path, uname="aarch64", getconf="64")
    result = run_script("--dry-run", "--no-service", script=checkout / "install.sh", env=env)
    assert result.returncode == 0, result.stderr
    assert "pip install -e" in result.stdout


def test_an_old_python_names_the_way_out(checkout: Path, tmp_path: Path) -> None:
    """Ubuntu 16.04 (the DeepLens) has Python 3.5: say that PYTHON= can point at another one."""
    old = tmp_path / "python3.5"
    old.write_text("#!/bin/sh\n[ \"$1\" = -c ] && case \"$2\" in *sys.exit*) exit 1;; *) echo 3.5.2;; esac\n")
    old.chmod(0o755)
    result = run_script("--dry-run", "--no-service", script=checkout / "install.sh", env={"PYTHON": str(old)})
    line = one_error(result)
    assert "is Python 3.5.2" in line and "PYTHON=" in line


def test_espeak_ng_is_optional(checkout: Path) -> None:
    """Only the clip builder needs it, and the DeepLens's Ubuntu 16.04 has none."""
    text = (checkout / "install.sh").read_text()
    assert "APT_OPTIONAL=(espeak-ng)" in text and "espeak-ng" not in text.split("APT_COMMON=(")[1].split(")")[0]


@can_install_service
def test_dry_run_service_names_the_steps_and_changes_nothing(checkout: Path) -> None:
    before = system_state()
    result = run_script("--dry-run", script=checkout / "install.sh")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for step in ("==> apt packages", "==> system user facecue", "==> system user facecue-sync (primary group facecue)",
                 "==> state /var/lib/facecue", "==> credentials: readable by facecue-sync alone",
                 "==> virtual environment /opt/facecue/venv",
                 "==> package facecue[cloud] into /opt/facecue/venv", "==> config /etc/facecue/config.toml",
                 "==> systemd units", "==> enable"):
        assert step in out
    assert "model sync timer not installed" in out
    assert system_state() == before


@can_install_service
@pytest.mark.skipif(Path("/var/lib/facecue").exists(), reason="shows what it would create only where it is not yet")
def test_only_the_sync_user_may_write_the_store(checkout: Path) -> None:
    out = run_script("--dry-run", script=checkout / "install.sh").stdout
    assert "install -d -o root -g facecue -m 0750 /var/lib/facecue" in out
    assert "install -d -o facecue-sync -g facecue -m 0750 /var/lib/facecue/models" in out
    assert "install -d -o facecue-sync -g facecue -m 0750 /var/lib/facecue/sync" in out
    assert "useradd --system --gid facecue --no-user-group" in out


def test_old_systemd_gets_a_unit_it_understands(tmp_path: Path) -> None:
    """systemd 229 (the DeepLens's) would warn about, and ignore, most of the sandbox."""
    result = run_script("--print-unit", "facecue.service", env=stand_ins(tmp_path, systemctl="systemd 229"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("# install.sh: for systemd 229, left out: ")
    for newer in ("ConfigurationDirectory", "PrivateUsers", "ProtectProc", "SystemCallFilter", "StartLimitIntervalSec"):
        assert newer in lines[0] and not any(line.startswith(newer + "=") for line in lines)
    service = lines[lines.index("[Service]"):]
    assert service[1] == "StartLimitInterval=0"  # its older spelling, in the section 229 reads it from
    assert "ProtectSystem=full" in service and "ProtectSystem=strict" not in service
    for kept in ("Type=notify", "User=facecue", "PrivateNetwork=yes", "DevicePolicy=closed", "NoNewPrivileges=yes"):
        assert kept in service


def test_current_systemd_gets_the_unit_unchanged(tmp_path: Path) -> None:
    for name in ("facecue.service", "facecue-sync.service", "facecue-sync.timer"):
        result = run_script("--print-unit", name, env=stand_ins(tmp_path, systemctl="systemd 252 (252.38-1~deb12u1)"))
        assert result.returncode == 0 and result.stdout == (ROOT / "systemd" / name).read_text(), result.stderr


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
    assert "==> systemd units" in result.stdout and "==> system users facecue-sync and facecue" in result.stdout
    assert "not made by install.sh: kept" in result.stdout
    assert (checkout / ".venv").exists()
    assert system_state() == before
