import argparse
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from device import config
from device.cli import build_parser
from tools.commands import SUBCOMMANDS

ROOT = Path(__file__).resolve().parents[1]


def facecue(*args: str, home: Path | None = None) -> subprocess.CompletedProcess:
    """``facecue ARGS``; with ``home``, ALSA reads that HOME's ``.asoundrc``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALSA_", "XDG_CONFIG"))}
    if home is not None:
        env["HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "device.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)


@pytest.fixture()
def alsa_home(tmp_path: Path) -> Path:
    """A HOME whose ALSA default output writes raw samples to ``out.raw`` (no sound card needed),
    so the real PortAudio start, with its JACK probing, runs; ``config.toml`` there is all defaults."""
    pytest.importorskip("pyaudio")
    (tmp_path / "config.toml").write_text("")
    (tmp_path / ".asoundrc").write_text(
        f'pcm.!default {{\n  type file\n  slave.pcm "null"\n  file "{tmp_path / "out.raw"}"\n'
        '  format "raw"\n}\n')
    return tmp_path


def test_sync_is_delegated_with_its_own_options():
    result = facecue("sync", "--help")
    assert result.returncode == 0, result.stderr
    assert "--rollback" in result.stdout
    assert "sync " in facecue("--help").stdout


@pytest.mark.parametrize("command", ["eval", "bench"])
def test_the_model_makers_commands_are_not_the_devices(command):
    """One command per audience: ``facecue eval`` is a usage error; ``facecue-model eval`` it is."""
    result = facecue(command, "--help")
    assert result.returncode == 2 and result.stderr.splitlines()[-1].startswith("facecue: error: ")
    assert model_maker(command, "--help").returncode == 0


def test_print_default_is_the_validated_default():
    result = facecue("config", "--print-default")
    assert config.from_dict(tomllib.loads(result.stdout)) == config.Config()


def test_say_writes_the_clip(tmp_path):
    out = tmp_path / "happy.wav"
    result = facecue("say", "happy", "--audio-out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 10_000


def test_say_unknown_label_is_one_line():
    result = facecue("say", "joy")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("facecue: error: unknown label 'joy'")


def test_say_on_the_earphone_keeps_stderr_empty(alsa_home):
    result = facecue("say", "happy", home=alsa_home)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert (alsa_home / "out.raw").stat().st_size > 10_000


def test_doctor_keeps_stderr_for_its_own_lines(alsa_home):
    """The model check loads LiteRT (its XNNPACK banner) and the audio check starts PortAudio (JACK)."""
    result = facecue("doctor", "--config", str(alsa_home / "config.toml"), home=alsa_home)
    assert "model " in result.stdout and "audio " in result.stdout
    assert result.stderr == ""


def test_run_keeps_stderr_empty(alsa_home):
    from tools.data.face_video import Segment, write_video

    video = alsa_home / "nobody.avi"
    write_video(video, [Segment(None, 3.0)], fps=15)  # time for the audio child to start and open the output
    result = facecue("run", "--config", str(alsa_home / "config.toml"), "--source", str(video), "--realtime",
                     home=alsa_home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audio output 0: default" in result.stdout
    assert result.stderr == ""


def test_every_command_and_option_says_what_it_does():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    undocumented = [f"facecue {a.dest}" for a in parser._actions if not a.help]
    undocumented += [f"facecue {c.dest}" for c in sub._choices_actions if not c.help]
    for name, command in sub.choices.items():
        undocumented += [f"facecue {name} {a.dest}" for a in command._actions if not a.help]
    assert sorted(sub.choices) == ["config", "doctor", "run", "say", "sync"]
    assert undocumented == []


def test_say_help_lists_every_label():
    from audio.voice import LABELS

    result = facecue("say", "--help")
    assert result.returncode == 0, result.stderr
    assert all(label in result.stdout for label in LABELS)


@pytest.mark.parametrize("args", [("run", "--bogus"), ("say",), ("config",), ("run", "--mode", "loud")])
def test_usage_errors_have_the_one_prefix(args):
    result = facecue(*args)
    assert result.returncode == 2
    assert result.stderr.splitlines()[0].startswith("usage: facecue")
    assert result.stderr.splitlines()[-1].startswith("facecue: error: ")


def test_a_bad_config_has_the_one_prefix(tmp_path):
    missing = tmp_path / "none.toml"
    result = facecue("config", "--check", str(missing))
    assert result.returncode == 2
    assert result.stderr.strip() == f"facecue: error: config file {missing} not found"


def test_a_model_error_is_said_once(tmp_path):
    missing = tmp_path / "none.tflite"
    (tmp_path / "config.toml").write_text("")
    result = facecue("run", "--config", str(tmp_path / "config.toml"), "--model", str(missing),
                     "--audio-out", str(tmp_path / "out.wav"))
    assert result.returncode == 1
    assert (result.stdout + result.stderr).count("not found") == 1, result.stdout + result.stderr
    assert result.stderr == f"facecue: error: model file {missing} not found\n"


def doctor_row(result: subprocess.CompletedProcess, name: str) -> str:
    """The line of ``facecue doctor``'s table for check ``name``."""
    return next(line for line in result.stdout.splitlines() if line.startswith(f"{name} "))


@pytest.mark.parametrize("device, status, detail", [
    ("", "ok", "default output is 0: default"),
    ("DEF", "ok", "[audio] device 'DEF' is 0: default"),
    ("usb earphone", "FAIL", "[audio] device 'usb earphone': no audio output matching 'usb earphone'"),
    ("7", "FAIL", "[audio] device '7': no audio output with index 7"),
])
def test_doctor_checks_the_configured_audio_device(alsa_home, device, status, detail):
    config_file = alsa_home / "config.toml"
    config_file.write_text(f'[audio]\ndevice = "{device}"\n')
    result = facecue("doctor", "--config", str(config_file), home=alsa_home)
    _, got_status, got_detail = doctor_row(result, "audio").split(None, 2)
    assert got_status == status and got_detail.startswith(detail), result.stdout
    if status == "FAIL":
        assert result.returncode == 1  # a missing earphone fails the doctor, whatever else works


def write_bytes(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def fifo(path: Path) -> str:
    os.mkfifo(path)
    return str(path)


def link(path: Path, target: str) -> str:
    path.symlink_to(target)
    return str(path)


def deep_model(folder: Path) -> str:
    """A model file whose metadata nests 200,000 arrays deep."""
    (folder / "deep.tflite").write_bytes(b"TFL3")
    (folder / "deep.json").write_text("[" * 200_000 + "]" * 200_000)
    return str(folder / "deep.tflite")


def sync_config(folder: Path, extra: str = "") -> str:
    """A config with a sync source, its state and store in ``folder``."""
    return write_bytes(folder / "config.toml", f'[model]\nstore = "{folder}/store"\n[sync]\nsource = "s3://bucket/prefix"\n'
                                             f'state_dir = "{folder}/state"\n{extra}'.encode())


@pytest.mark.parametrize("make_args, code, line", [
    (lambda d: ["run", "--source", "99999999999999999999", "--config", write_bytes(d / "c.toml", b"")], 2,
     "[camera] source 99999999999999999999 is no camera index (0 to 99) and no file"),
    (lambda d: ["run", "--source", str(d), "--audio-out", str(d / "missing" / "out.wav")], 2,
     "--audio-out {d}/missing/out.wav: no folder {d}/missing"),
    (lambda d: ["say", "happy", "--audio-out", str(d)], 2, "--audio-out {d} is a folder; name a .wav file to write"),
    (lambda d: ["config", "--check", write_bytes(d / "latin1.toml", b"[audio]\nlanguage = \"fran\xe7ais\"\n")], 2,
     "config file {d}/latin1.toml is not UTF-8 text (byte 24): not a TOML file"),
    (lambda d: ["config", "--check", write_bytes(d / "deep.toml", b"a = " + b"[" * 5000)], 2,
     "config file {d}/deep.toml is not valid TOML: nested too deeply"),
    # flags go through the config's own validator, in every command
    (lambda d: ["say", "happy", "--language", "fr", "--config", write_bytes(d / "c.toml", b"")], 2,
     "[audio] language must be one of en, id, got 'fr'"),
    (lambda d: ["run", "--language", "fr", "--config", write_bytes(d / "c.toml", b"")], 2,
     "[audio] language must be one of en, id, got 'fr'"),
    # what only the run or the sync used to find, or never finished reading (issue 36)
    (lambda d: ["config", "--check", "/dev/zero"], 2, "config file /dev/zero is not a regular file"),
    (lambda d: ["config", "--check", link(d / "zero.toml", "/dev/zero")], 2,
     "config file {d}/zero.toml is not a regular file"),
    (lambda d: ["config", "--check", fifo(d / "pipe.toml")], 2, "config file {d}/pipe.toml is not a regular file"),
    (lambda d: ["config", "--check", write_bytes(d / "big.toml", b"#" * (2 << 20))], 2,
     "config file {d}/big.toml is larger than 1048576 bytes"),
    (lambda d: ["sync", "--config", sync_config(d), "--public-key", "/dev/zero"], 1,
     "public key /dev/zero is not a regular file"),
    (lambda d: ["config", "--check", write_bytes(d / "c.toml", b'[model]\nstore = "/var/lib\\u0000x"\n')], 2,
     "{d}/c.toml: [model] store must not contain a NUL byte, got '/var/lib\\x00x'"),
    (lambda d: ["config", "--check", write_bytes(d / "c.toml", '[camera]\nsource = "²"\n'.encode())], 2,
     "{d}/c.toml: [camera] source ² is no camera index (0 to 99) and no file"),
    (lambda d: ["config", "--check", write_bytes(d / "c.toml", b"[sync]\nconnect_timeout = 1e12\n")], 2,
     "{d}/c.toml: [sync] connect_timeout must be <= 300, got 1000000000000.0"),
    (lambda d: ["config", "--check", write_bytes(d / "c.toml", b"[sync]\ndownload_deadline = 1e300\n")], 2,
     "{d}/c.toml: [sync] download_deadline must be <= 86400, got 1e+300"),
    (lambda d: ["sync", "--config", sync_config(d), "--timeout", "1e300"], 2,
     "[sync] connect_timeout must be <= 300, got 1e+300"),
    (lambda d: ["sync", "--config", sync_config(d), "--source", "my-bucket/models"], 2,
     "[sync] source 'my-bucket/models' is not an s3://BUCKET/PREFIX address"),
    (lambda d: ["config", "--check", write_bytes(d / "c.toml", b'[sync]\nendpoint_url = "minio:9000"\n')], 2,
     "{d}/c.toml: [sync] endpoint_url 'minio:9000' is not an http:// or https:// address with a host"),
    (lambda d: ["run", "--model", deep_model(d), "--source", str(d), "--audio-out", str(d / "a.wav")], 1,
     "model metadata {d}/deep.json is not valid JSON (nested 200000 levels deep, more than 32)"),
    (lambda d: ["run", "--source", str(d / "nope.mp4"), "--audio-out", str(d / "a.wav")], 1,
     "source '{d}/nope.mp4': no such file or folder"),
    (lambda d: ["run", "--source", write_bytes(d / "notes.mp4", b"not a video\n"), "--audio-out", str(d / "a.wav")],
     1, "video file {d}/notes.mp4 cannot be opened"),
    (lambda d: ["run", "--source", str(d), "--audio-out", fifo(d / "out.wav")], 2,
     "--audio-out {d}/out.wav is not a regular file; name a .wav file to write"),
    (lambda d: ["say", "happy", "--audio-out", link(d / "full.wav", "/dev/full")], 2,
     "--audio-out {d}/full.wav is not a regular file; name a .wav file to write"),
])
def test_hostile_input_is_one_line_before_anything_runs(tmp_path, make_args, code, line):
    result = facecue(*make_args(tmp_path))
    assert result.returncode == code, result.stdout + result.stderr
    assert result.stderr == f"facecue: error: {line.format(d=tmp_path)}\n"
    assert "Traceback" not in result.stdout


def test_an_empty_image_is_said_and_not_counted_as_a_frame(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"")
    result = facecue("run", "--source", str(tmp_path), "--audio-out", str(tmp_path / "out.wav"))
    assert result.returncode == 0, result.stderr
    assert f"WARNING image {tmp_path / 'a.jpg'} is empty (0 bytes): skipped, not a frame" in result.stdout
    assert f"end of {tmp_path} after 0 frames" in result.stdout
    assert "bad frame" not in result.stdout


def test_model_metadata_of_the_wrong_shape_is_one_line(tmp_path, model_path):
    import json
    import shutil

    model = tmp_path / "m.tflite"
    shutil.copy(model_path, model)
    for field, value, line in (("labels", 5, "labels must be a list of distinct names, got 5"),
                               ("preprocessing", [1], "has malformed preprocessing")):
        meta = json.loads(model_path.with_suffix(".json").read_text())
        meta[field] = value
        model.with_suffix(".json").write_text(json.dumps(meta))
        result = facecue("run", "--model", str(model), "--source", str(tmp_path), "--audio-out",
                         str(tmp_path / "out.wav"))
        assert result.returncode == 1
        assert result.stderr.startswith(f"facecue: error: model metadata {model.with_suffix('.json')} {line}")
        assert result.stderr.count("\n") == 1


def test_say_without_its_output_fails_in_one_line(tmp_path):
    (tmp_path / "config.toml").write_text('[audio]\ndevice = "no-such-output"\n')
    result = facecue("say", "happy", "--config", str(tmp_path / "config.toml"))
    assert result.returncode == 1
    assert result.stderr.startswith("facecue: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "no-such-output" in result.stderr


def test_audio_out_onto_a_pipe_or_a_device_leaves_it_as_it_was(tmp_path):
    import stat

    pipe, device = fifo(tmp_path / "out.wav"), link(tmp_path / "null.wav", "/dev/null")
    for target in (pipe, device):
        assert facecue("say", "happy", "--audio-out", target).returncode == 2
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode) and os.readlink(device) == "/dev/null"
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def model_maker(*args: str) -> subprocess.CompletedProcess:
    """``facecue-model ARGS`` (also installed as ``facecue-train``) through its console entry's module."""
    return subprocess.run([sys.executable, "-m", "tools.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_both_commands_are_the_console_scripts_and_list_their_subcommands():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"facecue": "device.cli:main", "facecue-model": "tools.cli:main",
                       "facecue-train": "tools.cli:main"}
    listing = model_maker("--help")
    assert listing.returncode == 0, listing.stderr
    assert "run RECIPE" in listing.stdout
    assert all(f"    {name} " in listing.stdout or f"    {name}\n" in listing.stdout for name in SUBCOMMANDS)


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_model_maker_subcommand_has_its_help(name):
    result = model_maker(name, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: facecue-model {name}"), result.stdout


@pytest.mark.parametrize("args", [("bogus",), (), ("scenes", "--bogus"), ("train", "--epochs", "x"),
                                  ("publish", "m.tflite")])
def test_model_maker_usage_errors_exit_2_in_one_line(args):
    assert_usage_error(model_maker(*args))


def assert_usage_error(result: subprocess.CompletedProcess) -> str:
    """Exit 2, the usage, then one ``facecue: error:`` line, which is returned."""
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("usage: facecue-model")
    assert [line for line in result.stderr.splitlines() if "error" in line] == result.stderr.splitlines()[-1:]
    assert result.stderr.splitlines()[-1].startswith("facecue: error: ")
    return result.stderr.splitlines()[-1]


@pytest.mark.parametrize("args", [
    ("publish", "m.tflite", "--to", "s3://bucket/p", "--key", "k.pem", "--expires-in", "0"),
    ("refresh", "--to", "s3://bucket/p", "--key", "k.pem", "--expires-in", "366"),
    ("recover", "--out", "out", "--faces", "0"),
    ("eval", "--threads", "0"),
    ("calibrate", "--threads", "-1"),
    ("announce", "--video", "v.avi", "--grace", "-0.5"),
    ("framing", "--n", "-1"),
    ("people", "--scenes", "0"),
    ("people-video", "--out", "o.avi", "--fps", "0"),
    ("scenes", "video", "--out", "o.avi", "--fps", "nan"),
    ("scenes", "caltech", "--out", "o.npz", "--empty", "-1"),
    ("bench", "--soak", "0"),
    ("bench-detect", "--empty", "0"),
    ("blazeface", "m.tflite", "a.jpg", "--threshold", "2"),
])
def test_a_bad_count_or_duration_is_a_usage_error_named_before_anything_runs(args):
    """Refused by the parser (exit 2, naming the option), not found at run time as exit 1
    or a traceback once data is loaded; nothing is read, so no file here need exist."""
    assert f"argument {args[-2]}: must be " in assert_usage_error(model_maker(*args))


def test_model_maker_run_time_failure_exits_1_in_one_line(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"not a model")
    result = model_maker("publish", str(model), "--to", "s3://bucket/prefix", "--key", str(tmp_path / "none.pem"))
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("facecue: error: ") and result.stderr.count("\n") == 1, result.stderr


# (subcommand, ARGS naming a missing input file, ARGS asking for what cannot work); "{missing}"
# is a file that does not exist. The bad ARGS are refused by the parser or after it, before any work.
RULE_CASES = [
    ("eval", ["--data", "{missing}"], ["--data", "{folder}"]),  # a folder of photos without --detect
    ("announce", ["--video", "{missing}"], ["--video", "{missing}", "--vary", "nope=1"]),
    ("hedge", ["--video", "{missing}"], ["--video", "{missing}", "--set", "decide"]),
    ("calibrate", ["--crops", "{missing}"], ["--crops", "{missing}", "--threads", "0"]),
    ("align-faces", ["--data", "{missing}", "--out", "{folder}/out.npz"], ["--data", "{missing}"]),  # no --out
    ("scenes", ["fer", "--data", "{missing}", "--out", "{folder}/s.npz"], ["fer", "--n", "0"]),
    ("compare-runs", ["--log", "{missing}", "{missing}"], ["--log", "{missing}", "{missing}", "--fps", "0"]),
]


@pytest.mark.parametrize("name, missing, bad", RULE_CASES, ids=[case[0] for case in RULE_CASES])
def test_the_exit_code_rule_a_missing_input_exits_1_asking_wrongly_2(tmp_path, capsys, name, missing, bad):
    """facecue-model's one runner (device.argparser's rule), in process so that it is quick:
    a missing input is a run-time failure, one line and nothing else; asking wrongly is
    exit 2, its one error line last (argparse puts its usage above it)."""
    from tools.cli import main

    def run(args: list[str]) -> tuple[int, list[str]]:
        names = {"missing": tmp_path / "missing.file", "folder": tmp_path}
        try:
            code = main([name, *(arg.format(**names) for arg in args)])
        except SystemExit as exc:  # argparse's usage error, as the console script ends it
            code = exc.code
        return code, capsys.readouterr().err.splitlines()

    code, err = run(missing)
    assert code == 1 and len(err) == 1 and err[0].startswith("facecue: error: "), err
    assert "missing.file" in err[0]
    code, err = run(bad)
    assert code == 2 and err and err[-1].startswith("facecue: error: "), err
    assert [line for line in err if "error" in line] == err[-1:]


def test_every_exception_type_the_runner_classifies_exists():
    """A misspelt name would leave its failures to a traceback: each must import, as an exception."""
    import importlib

    from tools.cli import RUNTIME_ERRORS, USAGE_ERRORS

    for name in USAGE_ERRORS + RUNTIME_ERRORS:
        module, _, cls = name.partition(":")
        assert issubclass(getattr(importlib.import_module(module), cls), Exception), name


def test_a_sync_config_error_exits_2_and_a_sync_failure_1(tmp_path):
    bad = facecue("sync", "--config", write_bytes(tmp_path / "bad.toml", b"[sync]\nbogus = 1\n"))
    assert bad.returncode == 2 and bad.stderr.startswith("facecue: error: ") and bad.stderr.count("\n") == 1
    failed = facecue("sync", "--config", sync_config(tmp_path), "--public-key", str(tmp_path / "none.pub"))
    assert failed.returncode == 1, failed.stderr
    assert failed.stderr == (f"facecue: error: public key {tmp_path / 'none.pub'} is missing (copy the publisher's "
                             "public key there, or name it in [sync] public_key)\n")
