"""`facecue-model bench` on a tiny budget: every row present, JSON and markdown agree, the soak reports.

No timing is asserted: the figures depend on the machine. A tiny stand-in
architecture replaces VGG-16 so no 130 MB file is converted here.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device.capture import open_source
from tools.bench.daemon import write_loop_playlist
from tools.bench.report import PAPER_ROWS
from tools.bench.run import main
from tools.bench.soak import rss_slope
from tools.data.face_video import Segment, write_video

ROOT = Path(__file__).resolve().parents[1]
ROW_KEYS = ["vgg16-float32", "vgg16-int8", "modified-float32", "modified-int8", "fer-peer"]


@pytest.fixture(scope="module")
def small_data(tmp_path_factory, valid_faces) -> Path:
    """Fourteen validation faces, two of each class: the bench's --data."""
    pick = np.concatenate([np.flatnonzero(valid_faces.labels == c)[:2] for c in range(len(valid_faces.classes))])
    path = tmp_path_factory.mktemp("data") / "small.npz"
    np.savez(path, images=valid_faces.images[pick], labels=valid_faces.labels[pick].astype(np.uint8),
             classes=np.array(valid_faces.classes))
    return path


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def tiny_args(model: Path, data: Path, cache: Path, out: Path, *extra: str) -> list[str]:
    return ["--model", str(model), "--float-model", str(out / "no_float_twin.tflite"), "--data", str(data),
            "--baseline-arch", "vgg_elu-tiny", "--cache", str(cache), "--out", str(out),
            "--faces", "6", "--repeats", "1", "--warmup", "1", "--scene-seconds", "2", "--threads", "2", *extra]


def test_table_has_every_row_and_the_json_matches(model_path, small_data, cache, tmp_path, capsys):
    pytest.importorskip("tensorflow")
    out = tmp_path / "out"
    assert main(tiny_args(model_path, small_data, cache, out, "--skip", "daemon")) == 0
    result = json.loads((out / "bench.json").read_text())
    rows = {r["key"]: r for r in result["table"]}
    assert list(rows) == ROW_KEYS
    for key in ROW_KEYS[:4]:
        assert rows[key]["ms"] > 0 and len(rows[key]["ms_passes"]) == 1, rows[key]
    # built without weights: speed only, never an accuracy
    for key in ("vgg16-float32", "vgg16-int8", "modified-float32"):
        assert "untrained" in rows[key]["note"] and rows[key]["acc_valid"] is None
    shipped = rows["modified-int8"]
    assert shipped["valid_n"] == 14 and 0.0 <= shipped["acc_valid"] <= 1.0 and shipped["acc_faces"] is not None
    peer = rows["fer-peer"]
    assert peer["ms"] is not None or peer["note"].startswith("skipped: the fer package")
    assert set(result["ratios"]) == {"VGG-16 float32 / modified float32", "VGG-16 int8 / modified int8",
                                     "VGG-16 float32 / modified int8"}
    assert all(v > 0 for v in result["ratios"].values())
    runs = result["pipeline"]["runs"]
    assert [(r["detector"], r["threads"]) for r in runs] == [("yunet", 1), ("yunet", 2), ("haar", 1), ("haar", 2)]
    assert all(r["frames"] > 0 and r["fps"] > 0 and r["dominant"] in r["ms"] for r in runs)
    assert all(r["faces"] > 0 for r in runs)  # the composed video holds real faces, which both detectors find
    assert "real scenes" in result["pipeline"]["video"]
    assert result["daemon"] == {"skipped": "left out (--skip daemon)"}
    assert result["machine"]["cores"] >= 1 and result["machine"]["litert"] != "absent"

    md = (out / "bench.md").read_text()
    printed = capsys.readouterr().out
    assert md in printed  # printed and written are the same report
    assert re.search(rf"^{re.escape(str(cache))} holds \d+ MB of built baselines", printed, re.M)
    table = [line for line in md.splitlines() if "| this machine |" in line or "(paper) |" in line]
    assert len(table) == len(ROW_KEYS) + len(PAPER_ROWS)
    for p in PAPER_ROWS:
        assert f"| {p['s']:.5f} |" in md
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_runs_without_tensorflow_or_matplotlib(model_path, small_data, cache, tmp_path):
    """Modules that raise ImportError stand in for the missing packages: rows stay, with the reason."""
    blocker = tmp_path / "blocked"
    blocker.mkdir()
    for name in ("tensorflow", "matplotlib"):
        (blocker / f"{name}.py").write_text("raise ImportError('not installed')\n")
    out = tmp_path / "out"
    args = tiny_args(model_path, small_data, tmp_path / "empty_cache", out, "--skip", "daemon", "--skip", "pipeline")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-m", "tools.cli", "bench", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = {r["key"]: r for r in json.loads((out / "bench.json").read_text())["table"]}
    for key in ("vgg16-float32", "vgg16-int8", "modified-float32"):
        assert rows[key]["ms"] is None
        assert rows[key]["note"].startswith("skipped: TensorFlow is not installed"), rows[key]
    assert rows["modified-int8"]["ms"] > 0
    assert "chart skipped: matplotlib is not installed" in proc.stdout
    assert not (out / "bench.png").exists()


def test_soak_reports_rss_samples_slope_and_faults(model_path, small_data, tmp_path):
    out = tmp_path / "out"
    args = ["--soak", "0.05", "--soak-every", "1", "--model", str(model_path), "--data", str(small_data),
            "--faces", "6", "--scene-seconds", "2", "--out", str(out)]
    assert main(args) == 0
    soak = json.loads((out / "soak.json").read_text())["soak"]
    assert 0 < soak["ready_s"] < 120
    assert len(soak["samples"]) >= 2 and all(mb > 10 for _, mb in soak["samples"])
    assert soak["slope_mb_per_h"] is None  # 3 s of samples: no slope from so short a run
    assert "| none (a slope needs a run of 5 min or more) |" in (out / "soak.md").read_text()
    assert soak["peak_rss_mb"] >= max(mb for _, mb in soak["samples"])
    assert soak["exit_code"] == 0 and not soak["ended_early"]
    assert soak["errors"] == 0 and soak["bad"] == 0 and soak["frames"] > 0
    assert "### Soak" in (out / "soak.md").read_text()


def test_loop_playlist_plays_the_video_over_and_over(tmp_path):
    face = np.random.default_rng(1).integers(0, 255, (48, 48), dtype=np.uint8)
    video = tmp_path / "v.avi"
    n = write_video(video, [Segment(face, 1.0)], fps=10)
    playlist = write_loop_playlist(video, tmp_path, seconds=2.5, video_seconds=1.0)
    source = open_source(str(playlist))
    times = [f.t for f in source.frames()]
    source.close()
    assert len(times) == 4 * n  # ceil(2.5 / 1) + 1 plays
    assert times == sorted(times) and times[-1] > 3.5


def test_rss_slope_is_megabytes_per_hour():
    assert rss_slope([(0.0, 100.0), (1800.0, 101.0), (3600.0, 102.0)]) == pytest.approx(2.0)
    assert rss_slope([(0.0, 100.0)]) is None
    assert rss_slope([(0.0, 100.0), (60.0, 101.0), (120.0, 102.0)]) is None  # two minutes: no slope
    assert rss_slope([(0.0, 100.0), (300.0, 100.5)]) == pytest.approx(6.0)


def test_help_shows_each_default(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "timing passes; the median is reported (default: 5)" in text
    assert "(default: bench-results)" in text
    assert "(default: None)" not in text and "(default: [])" not in text


def test_tensorflow_says_nothing_on_stderr_and_counts_read_right(model_path, small_data, tmp_path):
    """The baselines built with TensorFlow in a child, as a user runs it: stderr holds no
    oneDNN or CPU-feature line, and one interpreter thread is "1 interpreter thread"."""
    pytest.importorskip("tensorflow")
    out = tmp_path / "out"
    args = tiny_args(model_path, small_data, tmp_path / "empty_cache", out, "--skip", "daemon", "--skip", "pipeline",
                     "--skip", "peer")
    proc = subprocess.run([sys.executable, "-m", "tools.cli", "bench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "; 1 interpreter thread." in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["--data", "/nonexistent/valid.npz"], "/nonexistent/valid.npz: no such data file"),
    (["--video", "/nonexistent/v.mp4"], "video /nonexistent/v.mp4 not found"),
])
def test_bad_input_is_one_line(args, message, tmp_path, capsys):
    from tools.cli import main as facecue_model

    assert facecue_model(["bench", *args, "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"facecue: error: {message}"


@pytest.mark.parametrize("ms, threads, verdict", [(1.763, 1, "yes"), (2.4, 1, "NO"), (1.2, 2, "n/a"), (None, 1, "n/a")])
def test_per_face_target_is_judged_on_one_thread_only(ms, threads, verdict):
    from tools.bench.report import target_lines

    result = {"table": [{"key": "modified-int8", "ms": ms}], "settings": {"model_threads": threads},
              "ratios": {}, "pipeline": {}, "daemon": {}}
    row = next(line for line in target_lines(result) if "ms per face" in line)
    assert row.startswith("| modified VGG-16 int8 <= 2 ms per face on one thread |")
    assert row.endswith(f"| {verdict} |")
