"""The daemon as a real subprocess on a video of faces: what the wearer gets."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from models import DEFAULT_MODEL
from tools.data.face_video import Segment, write_video

ROOT = Path(__file__).resolve().parents[1]
ANNOUNCE = re.compile(r"announce (\w+) confidence ([0-9.]+) t ([0-9.]+)s")


def facecue(*args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "device.cli", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})}, **kw)


@pytest.fixture(scope="module")
def scene(tmp_path_factory, clear_faces):
    """happy 4 s, nobody 3 s, surprise 4 s, at 15 frames/s."""
    if not {"happy", "surprise"} <= clear_faces.keys():
        pytest.skip("no clear happy/surprise face found")
    path = tmp_path_factory.mktemp("scene") / "scene.avi"
    write_video(path, [Segment(clear_faces["happy"], 4.0), Segment(None, 3.0),
                       Segment(clear_faces["surprise"], 4.0)], fps=15)
    return path


@pytest.fixture()
def config(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[log]\nstats_every = 1\n")
    return path


def test_announces_each_expression_once_and_writes_what_the_user_hears(scene, config, tmp_path):
    out_wav = tmp_path / "heard.wav"
    proc = facecue("run", "--config", str(config), "--source", str(scene), "--audio-out", str(out_wav))
    log, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, log
    said = [(m[1], float(m[2]), float(m[3])) for m in ANNOUNCE.finditer(log)]
    assert [s[0] for s in said] == ["happy", "surprise"], log
    assert 0.5 < said[0][2] < 4.0 and 7.0 < said[1][2] < 11.0
    assert all(conf >= 0.5 for _, conf, _ in said)
    assert re.search(r"stats fps [0-9.]+ frames \d+ faces \d+ capture [0-9.]+ms detect", log)
    # the audio lands where the announcements were made, silence elsewhere
    with wave.open(str(out_wav)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    for _, _, t in said:
        start = int(t * rate)
        assert np.abs(pcm[start:start + rate // 2]).max() > 1000
    assert np.abs(pcm[: int(said[0][2] * rate) - 10]).max() == 0


def test_same_run_gives_the_same_announcements(scene, config, tmp_path):
    logs = []
    for i in range(2):
        proc = facecue("run", "--config", str(config), "--source", str(scene),
                       "--audio-out", str(tmp_path / f"{i}.wav"))
        log, _ = proc.communicate(timeout=120)
        logs.append(ANNOUNCE.findall(log))
    assert logs[0] == logs[1] and logs[0]


def test_sigterm_stops_within_two_seconds_and_notifies_systemd(scene, config, tmp_path):
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(60)
    proc = facecue("run", "--config", str(config), "--source", str(scene), "--realtime",
                   "--audio-out", str(tmp_path / "x.wav"),
                   env={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "1000000"})
    try:
        messages = []
        while not any("WATCHDOG=1" in m for m in messages):
            messages.append(sock.recv(4096).decode())
        assert any("READY=1" in m for m in messages), messages
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)
        assert time.monotonic() - start < 2.0
        assert proc.returncode == 0
    finally:
        proc.kill()
        sock.close()
    assert (tmp_path / "x.wav").is_file()  # the audio written so far is kept


def test_missing_source_is_one_line(config):
    proc = facecue("run", "--config", str(config), "--source", "/nonexistent.mp4")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert out.strip().splitlines()[-1].startswith("facecue: error: source")


def test_bad_config_is_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[camera]\nsorce = 1\n")
    proc = facecue("run", "--config", str(bad))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    known = "source, width, height, fps, realtime"
    assert out.strip() == f"facecue: error: {bad}: unknown key [camera] sorce; known: {known}"


def test_garbage_frames_are_skipped_and_counted(tmp_path, config, clear_faces):
    import cv2

    from tools.data.face_video import compose_frame

    folder = tmp_path / "frames"
    folder.mkdir()
    face = compose_frame(next(iter(clear_faces.values())))
    for i in range(30):
        cv2.imwrite(str(folder / f"{i:03d}.png"), face)
    (folder / "010.png").write_bytes(b"truncated")  # a broken file mid-stream
    cv2.imwrite(str(folder / "020.png"), face[:20, :20])  # too small to hold a face
    proc = facecue("run", "--config", str(config), "--source", str(folder), "--audio-out", str(tmp_path / "a.wav"))
    log, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, log
    assert log.count("skipping bad frame") == 1  # the first is logged, then only counted
    # Each stats line counts the frames since the last one; "bad" is a running total.
    # A slow (busy) machine spreads the 28 good frames over more than one line.
    stats = re.findall(r"stats .* frames (\d+) .* bad (\d+)", log)
    assert sum(int(frames) for frames, _ in stats) == 28 and stats[-1][1] == "2", log
    assert ANNOUNCE.search(log)


def test_broken_model_is_one_line(tmp_path, config, model_path):
    broken = tmp_path / "m.tflite"
    broken.write_bytes(model_path.read_bytes()[:1000])
    (tmp_path / "m.json").write_text(model_path.with_suffix(".json").read_text())
    proc = facecue("run", "--config", str(config), "--model", str(broken), "--source", "/nonexistent.mp4")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "sha256" in out.strip().splitlines()[-1] and out.strip().splitlines()[-1].startswith("facecue: error:")


def test_a_model_failing_its_smoke_faces_is_refused_in_one_line(scene, config, tmp_path):
    """`--model` that loads but gives no probabilities: refused before the first frame,
    in one line (a configured model is said, not served around). Run-time failures on
    real faces, and the fall back to the shipped model, are in test_loop."""
    from tests.test_model_slot import nan_weights_model

    broken = nan_weights_model(tmp_path)
    proc = facecue("run", "--config", str(config), "--model", str(broken), "--source", str(scene),
                   "--audio-out", str(tmp_path / "heard.wav"))
    log, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, log
    assert log.strip().splitlines()[-1] == ("facecue: error: model 9.9.9-nan gives no probabilities on the "
                                            "smoke faces (row sums [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])"), log
    assert not ANNOUNCE.search(log)


def test_service_waits_for_a_camera_and_still_stops_on_sigterm(tmp_path, config):
    proc = facecue("run", "--config", str(config), "--source", "/dev/video97", "--retry",
                   "--audio-out", str(tmp_path / "a.wav"))
    lines = []
    while len([line for line in lines if "camera error" in line]) < 2:
        line = proc.stdout.readline()
        assert line, "".join(lines)
        lines.append(line)
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=5)
    assert time.monotonic() - start < 2.0 and proc.returncode == 0
    assert "retrying in" in "".join(lines)


def test_sighup_loads_a_newly_synced_model_at_once(tmp_path, model_path):
    """SIGHUP reaches the loop as a reload request: the store is looked at now, not after
    ``check_every`` (an hour here), even while the loop waits for a camera."""
    from tests.test_model_slot import install

    store = tmp_path / "store"
    install(store, model_path, "1.0.0")
    config = tmp_path / "config.toml"
    config.write_text(f'[model]\nstore = "{store}"\ncheck_every = 3600\n')
    proc = facecue("run", "--config", str(config), "--source", "/dev/video97", "--retry",
                   "--audio-out", str(tmp_path / "a.wav"))
    lines: list[str] = []

    def read_until(text: str) -> None:
        deadline = time.monotonic() + 60  # the camera's retry lines come at least every 30 s
        while not any(text in line for line in lines):
            line = proc.stdout.readline()
            assert line and time.monotonic() < deadline, "".join(lines)
            lines.append(line)

    try:
        read_until("camera error")
        install(store, model_path, "1.1.0")
        proc.send_signal(signal.SIGHUP)
        read_until("event model_updated")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    assert proc.returncode == 0
    assert served("".join(lines)) == [("1.0.0", str(store / "versions" / "1.0.0" / "model.tflite")),
                                      ("1.1.0", str(store / "versions" / "1.1.0" / "model.tflite"))]


# --- which model serves when the store is damaged ------------------------------------------


@pytest.fixture()
def faceless_folder(tmp_path):
    """Three frames without a face: a run that loads its model, serves and ends."""
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((240, 320, 3), 90 + i, np.uint8))
    return folder


def two_versions(store: Path, model_path: Path) -> Path:
    """A store as sync leaves it: 1.0.0 previous, 1.1.0 current; returns 1.1.0's folder."""
    from tests.test_model_slot import install

    install(store, model_path, "1.0.0")
    install(store, model_path, "1.1.0")
    return store / "versions" / "1.1.0"


def rewrite_metadata(folder: Path, **changes) -> None:
    """Change keys of model.json (see :func:`replace_metadata`)."""
    import json

    meta = json.loads((folder / "model.json").read_text())
    meta.update(changes)
    replace_metadata(folder, json.dumps(meta))


def replace_metadata(folder: Path, text: str) -> None:
    """Make model.json ``text``, and the hash its source.json records with it: what a
    signed release with this metadata would hold, had sync let it through."""
    import json

    from device.classify import sha256_file

    (folder / "model.json").write_text(text)
    source = json.loads((folder / "source.json").read_text())
    source["metadata_sha256"] = sha256_file(folder / "model.json")
    (folder / "source.json").write_text(json.dumps(source))


def swap_in_another_model(folder: Path, tmp_path: Path) -> None:
    """Replace model and metadata with another working model's (the shipped float32 one),
    which agree with each other and pass the smoke faces: only the signed record is left
    to catch the swap."""
    import shutil

    other = DEFAULT_MODEL.with_name("facecue_vgg_elu_float32.tflite")
    if not other.is_file():
        pytest.skip(f"{other.name} is absent")
    shutil.copyfile(other, folder / "model.tflite")
    shutil.copyfile(other.with_suffix(".json"), folder / "model.json")


def rot(folder: Path) -> None:
    data = bytearray((folder / "model.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "model.tflite").write_bytes(bytes(data))


DAMAGE = {
    "margin -5": (lambda f, t: rewrite_metadata(f, preprocessing={"size": 48, "margin": -5}),
                  "preprocessing margin must be 0..1, got -5.0"),
    "margin NaN": (lambda f, t: rewrite_metadata(f, preprocessing={"size": 48, "margin": float("nan")}),
                   "preprocessing margin must be 0..1, got nan"),
    "preprocessing []": (lambda f, t: rewrite_metadata(f, preprocessing=[]), "has malformed preprocessing"),
    "numeric labels": (lambda f, t: rewrite_metadata(f, labels=list(range(7))),
                       "labels must be a list of distinct names"),
    "nested 200k deep": (lambda f, t: replace_metadata(f, "[" * 200_000),
                         "is not valid JSON (nested 200000 levels deep, more than 32)"),
    "rotted": (lambda f, t: rot(f), "does not match its metadata"),
    "swapped after its checks": (swap_in_another_model,
                                 "is not what the signed manifest listed: it changed after it was checked"),
}


def served(log: str) -> list[str]:
    return re.findall(r"model loaded version (\S+) from (\S+)", log)


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_current_model_gives_way_to_previous_with_one_line(damage, tmp_path, model_path, faceless_folder):
    store = tmp_path / "store"
    current = two_versions(store, model_path)
    spoil, why = DAMAGE[damage]
    spoil(current, tmp_path)
    config = tmp_path / "config.toml"
    config.write_text(f'[model]\nstore = "{store}"\n')
    proc = facecue("run", "--config", str(config), "--source", str(faceless_folder),
                   "--audio-out", str(tmp_path / "a.wav"))
    log, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, log
    errors = [line for line in log.splitlines() if "model error" in line]
    assert len(errors) == 1 and why in errors[0] and str(current) in errors[0], log
    assert errors[0].endswith(f"; serving {store / 'versions' / '1.0.0' / 'model.tflite'} instead"), errors[0]
    assert served(log) == [("1.0.0", str(store / "versions" / "1.0.0" / "model.tflite"))], log


def without_file_permission_override() -> list[str]:
    """A prefix that runs a command without root's right to ignore file modes (as the
    service's unprivileged user runs); nothing for anyone else."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]


@pytest.mark.parametrize("problem", ["unreadable", "versions is a link"])
def test_a_store_the_daemon_cannot_use_is_said_once_and_the_shipped_model_serves(problem, tmp_path, model_path,
                                                                                 faceless_folder):
    store = tmp_path / "store"
    two_versions(store, model_path)
    prefix: list[str] = []
    if problem == "unreadable":
        os.chmod(store, 0)
        prefix, why = without_file_permission_override(), f"cannot read the model store {store}: Permission denied"
    else:
        elsewhere = tmp_path / "elsewhere"
        (store / "versions").rename(elsewhere)
        (store / "versions").symlink_to(elsewhere)
        why = f"{store / 'versions'} is a symbolic link; the model store follows none: move it away"
    config = tmp_path / "config.toml"
    config.write_text(f'[model]\nstore = "{store}"\n')
    try:
        run = subprocess.run([*prefix, sys.executable, "-m", "device.cli", "run", "--config", str(config),
                              "--source", str(faceless_folder), "--audio-out", str(tmp_path / "a.wav")],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        os.chmod(store, 0o755)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log

    errors = [line for line in log.splitlines() if "model error" in line]
    assert len(errors) == 1 and errors[0].endswith(f"model error: {why}; serving {DEFAULT_MODEL} instead"), log
    assert [path for _, path in served(log)] == [str(DEFAULT_MODEL)], log


# --- a broken face detector file ---------------------------------------------------------


def checkout_with_detector(root: Path, onnx: bytes) -> Path:
    """This checkout seen through links, but for YuNet's file, which holds ``onnx``."""
    from device.detect import YUNET_MODEL

    root.mkdir()
    for entry in ROOT.iterdir():
        if entry.name != "models" and not entry.name.startswith("."):
            (root / entry.name).symlink_to(entry)
    (root / "models").mkdir()
    for entry in YUNET_MODEL.parent.iterdir():
        if entry.suffix == ".py":  # a copy: models/ finds its files beside its own __file__, resolved
            (root / "models" / entry.name).write_bytes(entry.read_bytes())
        elif entry != YUNET_MODEL:
            (root / "models" / entry.name).symlink_to(entry)
    (root / "models" / YUNET_MODEL.name).write_bytes(onnx)
    return root


def broken_detectors() -> dict[str, bytes]:
    from device.detect import YUNET_MODEL

    good = YUNET_MODEL.read_bytes()
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x01
    return {"empty": b"", "truncated": good[: len(good) // 2], "one bit flipped": bytes(flipped),
            "zeros": bytes(len(good)), "random": np.random.default_rng(1).bytes(len(good)),
            "garbage appended": good + b"\x00garbage", "text": b"<html>404 Not Found</html>"}


@pytest.mark.parametrize("damage", broken_detectors())
def test_a_broken_face_detector_falls_back_to_haar_says_error_once_and_serves(damage, tmp_path, astronaut):
    import cv2

    video = tmp_path / "her.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 15, astronaut.shape[1::-1])
    for _ in range(30):
        writer.write(astronaut)
    writer.release()
    tree = checkout_with_detector(tmp_path / "checkout", broken_detectors()[damage])
    config = tmp_path / "config.toml"
    config.write_text("[log]\nstats_every = 60\n")
    run = subprocess.run([sys.executable, "-m", "device.cli", "run", "--config", str(config), "--source", str(video),
                          "--audio-out", str(tmp_path / "heard.wav")], cwd=tree, capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": str(tree)})
    log = run.stdout + run.stderr
    assert run.returncode == 0, log
    errors = [line for line in log.splitlines() if "error" in line.lower()]
    assert len(errors) == 2, log  # the one line, and the spoken "error" once
    assert re.search(r"detector error: YuNet model \S+ sha256 [0-9a-f]{12}\.\.\. is not the shipped file's; "
                     r"finding faces with the Haar cascade instead$", errors[0]), log
    assert errors[1].endswith("event error t 0.00s"), log
    assert int(re.search(r"stats .* faces (\d+) ", log)[1]) >= 20, log  # her face, found by Haar
    with wave.open(str(tmp_path / "heard.wav")) as w:
        assert np.abs(np.frombuffer(w.readframes(w.getnframes()), np.int16)).max() > 1000


# --- an audio output that blocks -------------------------------------------------------------


def test_an_audio_output_whose_open_blocks_never_stops_the_loop(tmp_path):
    """ALSA's default output writes into a named pipe no one reads: opening it blocks for
    good (and PyAudio holds Python's lock meanwhile). The daemon still gets READY out,
    feeds the watchdog, says the audio error once and stops on SIGTERM within 2 s."""
    pytest.importorskip("pyaudio")
    pipe = tmp_path / "speaker.raw"
    os.mkfifo(pipe)
    (tmp_path / ".asoundrc").write_text(
        f'pcm.!default {{\n  type file\n  slave.pcm "null"\n  file "{pipe}"\n  format "raw"\n}}\n')
    config = tmp_path / "config.toml"
    config.write_text("")
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(30)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALSA_", "XDG_CONFIG"))}
    proc = facecue("run", "--config", str(config), "--source", "/dev/video97", "--retry",
                   env={**env, "HOME": str(tmp_path), "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "1000000"})
    try:
        messages, pings, start = [], [], time.monotonic()
        while time.monotonic() - start < 12:  # past the child's 5 s deadline, twice over
            messages.append(sock.recv(4096).decode())
            pings += [time.monotonic() - start] if "WATCHDOG=1" in messages[-1] else []
        assert any("READY=1" in m for m in messages), messages
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        log, _ = proc.communicate(timeout=10)
        assert time.monotonic() - stopping < 2.0 and proc.returncode == 0, log
    finally:
        proc.kill()
        sock.close()
    assert pings[-1] > 11 and max(np.diff(pings)) < 1.5, pings  # a ping every half second throughout
    errors = [line for line in log.splitlines() if "audio error" in line]
    assert len(errors) == 1 and errors[0].endswith(
        "audio error: the audio output did not answer within 5s (opening or writing it blocks); restarting it, "
        "sounds are dropped meanwhile"), log
    assert "event camera_error" in log
