"""The sync timer and service: valid, hardened, and pointing where the code looks."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from test_systemd_unit import ANALYZE, exposure, needs_analyze, unit_settings

from device import sync
from device.config import DEFAULT_CONFIG_PATH, ModelConfig, SyncConfig

ROOT = Path(__file__).resolve().parents[1]
SERVICE = ROOT / "systemd" / "facecue-sync.service"
TIMER = ROOT / "systemd" / "facecue-sync.timer"
MAX_EXPOSURE = 1.5  # the sync needs IP; everything else is as locked down as the daemon


def settings(unit: Path) -> dict[str, list[str]]:
    return unit_settings(unit.read_text())


@needs_analyze
def test_units_verify_without_warnings(tmp_path: Path) -> None:
    """`verify` rejects a missing binary, and /opt/facecue exists on devices only."""
    service = tmp_path / SERVICE.name
    binary = settings(SERVICE)["ExecStart"][0].split()[0]
    service.write_text(SERVICE.read_text().replace(f"ExecStart={binary} ", f"ExecStart={shutil.which('true')} "))
    shutil.copy(TIMER, tmp_path / TIMER.name)
    result = subprocess.run([ANALYZE, "verify", str(service), str(tmp_path / TIMER.name)],
                            capture_output=True, text=True, timeout=120)
    ours = [line for line in (result.stdout + result.stderr).splitlines() if "facecue" in line]
    assert result.returncode == 0 and not ours, "\n".join(ours) or result.stderr


@needs_analyze
def test_sync_service_is_hardened() -> None:
    assert exposure(SERVICE) <= MAX_EXPOSURE


def test_service_runs_sync_once_as_its_own_user_with_network() -> None:
    s = settings(SERVICE)
    daemon = settings(ROOT / "systemd" / "facecue.service")
    assert s["Type"] == ["oneshot"] and s["User"] == ["facecue-sync"] != daemon["User"]
    assert s["Group"] == daemon["Group"] == ["facecue"]  # the daemon reads (only) what sync writes
    assert s["ExecStart"][0].split()[1:] == ["sync"]
    assert "PrivateNetwork" not in s and "AF_INET" in s["RestrictAddressFamilies"][0]
    assert "ConditionPathExists" not in s  # the timer runs everywhere; `facecue sync` knows if it is set up
    assert "--config" not in s["ExecStart"][0] and sync.build_parser().parse_args([]).config == DEFAULT_CONFIG_PATH
    assert "network-online.target" in s["Wants"][0] and "time-sync.target" in s["After"][0]


def test_service_may_write_exactly_where_sync_writes() -> None:
    """Its state directories and nothing else: not /var/lib/facecue itself."""
    s = settings(SERVICE)
    writable = [f"/var/lib/{name}" for name in s["StateDirectory"][0].split()]
    assert sorted(writable) == sorted([ModelConfig().store, SyncConfig().state_dir])
    assert s["ProtectSystem"] == ["strict"] and "ReadWritePaths" not in s
    assert s["StateDirectoryMode"] == ["0750"] and s["UMask"] == ["0027"]  # group facecue reads, others nothing


def test_credentials_are_where_install_sh_keeps_them_for_sync_alone() -> None:
    s = settings(SERVICE)
    install = (ROOT / "install.sh").read_text()
    for variable in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        path = next(e.split("=", 1)[1] for e in s["Environment"] if e.startswith(variable + "="))
        assert path.replace("/etc/facecue", "$CONFIG_DIR") in install
    assert 'secure_file "$file" "$SYNC_USER" 0600' in install


def test_timer_spreads_a_fleet_and_catches_up() -> None:
    t = settings(TIMER)
    assert t["OnBootSec"] == ["5min"] and t["OnUnitActiveSec"] == ["6h"]
    assert t["RandomizedDelaySec"] == ["1h"] and t["Persistent"] == ["yes"]
    assert t["Unit"] == [SERVICE.name] and t["WantedBy"] == ["timers.target"]


@pytest.mark.parametrize("unit", [SERVICE, TIMER])
def test_install_script_knows_the_units(unit: Path) -> None:
    assert unit.name in (ROOT / "install.sh").read_text()


def test_a_device_without_a_source_runs_the_timer_for_nothing(tmp_path: Path, capsys) -> None:
    """The timer runs on every device: without a source, one line, exit 0, and
    nothing touched (no lock, no state, no network)."""
    config = tmp_path / "config.toml"
    config.write_text(f'[model]\nstore = "{tmp_path / "models"}"\n[sync]\nstate_dir = "{tmp_path / "state"}"\n')
    assert sync.main(["--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert (out, err) == (f"facecue sync: not set up: no source in [sync] of {config} (see tools/cloud/README.md); "
                          "nothing to do\n", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]
