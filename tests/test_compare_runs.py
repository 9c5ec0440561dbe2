"""facecue-model compare-runs on recorded x86-64 and arm64 runs (tests/data/compare_runs):
what issue 38's arm64 run said passes, a real difference fails naming itself."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tools.cli import main as facecue_model
from tools.eval.compare_runs import main

DATA = Path(__file__).resolve().parent / "data" / "compare_runs"


def compare(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, list[str], str]:
    status = facecue_model(["compare-runs", *(str(a) for a in args)])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err


def both(arm64_eval: str = "arm64.eval", arm64_log: str = "arm64.log") -> list[str | Path]:
    return ["--eval", DATA / "x86.eval", DATA / arm64_eval, "--log", DATA / "x86.log", DATA / arm64_log]


def real(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("differs:")]


def test_issue_38s_arm64_run_is_the_same_within_tolerance(capsys):
    status, lines, err = compare(capsys, *both())
    assert status == 0 and err == ""
    assert lines == [
        "within tolerance: eval >= 0.80 faces: 44.0% here, 43.7% emulated (0.30 points; 1 allowed)",
        "within tolerance: eval >= 0.80 accuracy: 0.9091 here, 0.9084 emulated (0.07 points; 1 allowed)",
        "within tolerance: word 1 (announce happy) confidence: 0.80 here, 0.82 emulated (0.05 allowed)",
        "within tolerance: word 2 (announce angry) confidence: 0.79 here, 0.75 emulated (0.05 allowed)",
        "the same within tolerance (4 differences allowed)",
    ]


def test_a_real_emulated_run_of_model_2_0_0_is_the_same_within_tolerance(capsys):
    """Both sides recorded by tools/emulate.sh pi (qemu 10.0.2, commit 58f475a)."""
    status, lines, err = compare(capsys, "--eval", DATA / "x86-2.0.0.eval", DATA / "arm64-2.0.0.eval",
                                 "--log", DATA / "x86-2.0.0.log", DATA / "arm64-2.0.0.log")
    assert status == 0 and err == ""
    assert lines == ["within tolerance: word 1 (announce neutral) confidence: 0.75 here, 0.77 emulated (0.05 allowed)",
                     "the same within tolerance (1 difference allowed)"]


def test_identical_runs_say_so(capsys):
    status, lines, _ = compare(capsys, "--eval", DATA / "x86.eval", DATA / "x86.eval",
                               "--log", DATA / "x86.log", DATA / "x86.log")
    assert status == 0 and lines == ["the same within tolerance (0 differences allowed)"]


def test_another_word_fails_naming_it(capsys):
    status, lines, _ = compare(capsys, *both(arm64_log="arm64-word.log"))
    assert status == 1
    assert real(lines) == ["differs: word 2: announce angry at 22.00s here, announce sad at 22.00s emulated"]
    assert lines[-1] == "1 real difference from this host's run"


def test_the_same_words_in_another_order_fail(capsys):
    status, lines, _ = compare(capsys, *both(arm64_log="arm64-order.log"))
    assert status == 1
    assert real(lines) == ["differs: word order: announce happy, announce angry here; "
                           "announce angry, announce happy emulated"]


def test_a_missing_word_is_named(capsys, tmp_path):
    one = tmp_path / "one.log"
    one.write_text((DATA / "arm64.log").read_text().splitlines()[0] + "\n")
    status, lines, _ = compare(capsys, "--log", DATA / "x86.log", one)
    assert status == 1 and real(lines) == ["differs: word 2: announce angry at 22.00s here, nothing emulated"]


def test_beyond_the_tolerance_fails_on_each_figure(capsys):
    status, lines, _ = compare(capsys, *both("arm64-beyond.eval", "arm64-beyond.log"))
    assert status == 1
    assert real(lines) == [
        "differs: eval >= 0.80 faces: 44.0% here, 42.3% emulated (1.70 points; 1 allowed)",
        "differs: word 1 (announce happy) time: 17.00s here, 17.50s emulated (0.25s allowed)",
        "differs: word 2 (announce angry) confidence: 0.79 here, 0.71 emulated (0.05 allowed)",
    ]
    assert lines[-1] == "3 real differences from this host's run"


def test_the_tolerance_is_an_option(capsys):
    status, _, _ = compare(capsys, *both("arm64-beyond.eval", "arm64-beyond.log"),
                           "--points", "2", "--confidence", "0.1", "--fps", "2")
    assert status == 0


def test_another_predicted_label_fails_on_its_recall_and_its_confusion_row(capsys, tmp_path):
    table = (DATA / "x86.eval").read_text()
    changed = tmp_path / "arm64.eval"  # one happy face said fear
    changed.write_text(table.replace("0.8889  (72/81)", "0.8765  (71/81)")
                       .replace("happy            1        0        1       72",
                                "happy            1        0        2       71"))
    status, lines, _ = compare(capsys, "--eval", DATA / "x86.eval", changed)
    assert status == 1
    assert [line.split(":")[1] for line in real(lines)] == [" eval line 4", " eval line 13"]


def test_the_audio_is_compared_only_where_the_times_match(capsys, tmp_path):
    wav, other = tmp_path / "x86.wav", tmp_path / "arm64.wav"
    wav.write_bytes(b"RIFF one")
    other.write_bytes(b"RIFF two")
    status, lines, _ = compare(capsys, *both(), "--audio", wav, other)
    assert status == 1 and real(lines) == [f"differs: audio: {wav} and {other} differ although the words "
                                           "fall at the same times"]
    late = tmp_path / "late.log"  # the first word a frame late: the audio cannot match
    late.write_text((DATA / "x86.log").read_text().replace("t 17.00s", "t 17.25s"))
    status, lines, _ = compare(capsys, "--log", DATA / "x86.log", late, "--audio", wav, other)
    assert status == 0 and "within tolerance: audio not compared: the words fall at other times" in lines
    shutil.copy(wav, other)
    assert compare(capsys, *both(), "--audio", wav, other)[0] == 0


@pytest.mark.parametrize("args, message", [
    ((), "nothing to compare"),
    (("--audio", "a.wav", "b.wav", "--eval", "a", "b"), "--audio needs --log"),
    (("--log", "a.log", "b.log", "--fps", "0"), "--fps must be above 0"),
])
def test_usage_errors_exit_2_in_one_line(capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    assert exit_.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("facecue: error: ") and message in err[-1]


def test_an_unreadable_or_foreign_file_exits_1_in_one_line(capsys, tmp_path):
    """A run-time failure, as a difference is, but said in one ``facecue: error:`` line."""
    status, lines, err = compare(capsys, "--log", DATA / "x86.log", tmp_path / "none.log")
    assert status == 1 and lines == []
    assert err.splitlines() == [f"facecue: error: cannot read {tmp_path / 'none.log'}: No such file or directory"]
    status, _, err = compare(capsys, "--log", DATA / "x86.log", DATA / "x86.eval")
    assert status == 1
    assert err.startswith(f"facecue: error: {DATA / 'x86.eval'} line 1 is not an announcement line: ")
    assert err.count("\n") == 1
