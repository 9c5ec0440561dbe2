import re
import tomllib
from pathlib import Path

import pytest

from device import config


def test_default_file_round_trips_to_defaults():
    assert config.from_dict(tomllib.loads(config.render_default())) == config.Config()


def test_missing_default_path_means_defaults(tmp_path, monkeypatch):
    default = tmp_path / "etc" / "config.toml"  # absent, as on a fresh install
    monkeypatch.setattr(config, "DEFAULT_CONFIG_PATH", default)
    assert config.load(default) == config.Config()
    assert config.load(None) == config.Config()
    with pytest.raises(config.ConfigError, match="not found"):  # only the default may be missing
        config.load(tmp_path / "etc" / "other.toml")


def test_values_are_read(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[camera]\nsource = "/dev/video2"\nfps = 10\n[decide]\nquiet_labels = ["neutral"]\n')
    cfg = config.load(path)
    assert cfg.camera.source == "/dev/video2"
    assert cfg.camera.fps == 10.0 and isinstance(cfg.camera.fps, float)
    assert cfg.decide.quiet_labels == ["neutral"]
    assert cfg.audio == config.AudioConfig()


@pytest.mark.parametrize("text, message", [
    ("[camera]\nwidht = 3\n", "unknown key [camera] widht"),
    ("[cam]\n", "unknown section [cam]"),
    ("[camera]\nwidth = \"wide\"\n", "[camera] width must be int"),
    ("[camera]\nrealtime = 1\n", "[camera] realtime must be bool"),
    ("[audio]\nmode = \"loud\"\n", "[audio] mode must be one of speech, earcon"),
    ("[audio]\nvolume = 2\n", "[audio] volume must be <= 1.0"),
    ("[decide]\nquiet_labels = [1]\n", "[decide] quiet_labels must be list"),
    ("[camera\n", "not valid TOML"),
])
def test_bad_config_is_one_clear_line(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert str(path) in str(err.value)


def test_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(config.ConfigError, match="not found"):
        config.load(tmp_path / "nope.toml")


def test_button_timings_must_be_ordered(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[buttons]\nlong_press = 3.0\nstatus_hold = 2.0\n")
    with pytest.raises(config.ConfigError, match="long_press .* must be shorter than status_hold"):
        config.load(path)


@pytest.mark.parametrize("text, message", [
    ('[audio]\nlanguage = "fr"\n', "[audio] language must be one of en, id, got 'fr'"),
    ('[decide]\nquiet_labels = ["neutral", "nuetral"]\n', "[decide] quiet_labels must be one of angry, "),
    ('[decide]\nhedge = "yes"\n', "[decide] hedge must be bool, got 'yes'"),
    ('[decide]\nhedge_min_confidence = 1.5\n', "[decide] hedge_min_confidence must be <= 1.0"),
])
def test_what_run_would_refuse_config_check_refuses(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError, match=re.escape(message)):
        config.load(path)


def test_the_docs_list_the_config_as_print_default_gives_it():
    readme = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()
    start = readme.index("# facecue configuration.")
    assert readme[start:readme.index("```", start)] == config.render_default()


@pytest.mark.parametrize("text, message", [
    ("[sync]\nmax_attempts = -5\n", "[sync] max_attempts must be a positive number, got -5"),
    ("[sync]\nbackoff_base = 0\n", "[sync] backoff_base must be a positive number, got 0.0"),
    ("[sync]\nread_timeout = inf\n", "[sync] read_timeout must be a finite float, got inf"),
    ("[sync]\nanonymous = \"yes\"\n", "[sync] anonymous must be bool, got 'yes'"),
    ("[sync]\nbucket = \"b\"\n", "unknown key [sync] bucket; known: source, endpoint_url, "),
])
def test_config_check_and_sync_refuse_a_bad_sync_value_with_the_same_line(tmp_path, text, message, capsys):
    pytest.importorskip("botocore")
    from device import sync

    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as err:
        config.load(path)  # what `facecue config --check` runs
    assert str(err.value).startswith(f"{path}: {message}")
    assert sync.main(["--config", str(path)]) == 2  # a config error: usage, as `facecue config --check` would say
    assert capsys.readouterr().err == f"facecue: error: {err.value}\n"


def test_every_number_has_a_range_so_no_value_overflows_at_run_time():
    """A value past any sane bound (a timeout of 1e300) is refused by --check, not met
    as an OverflowError in the run."""
    import dataclasses
    from typing import get_type_hints

    for section in dataclasses.fields(config.Config):
        cls = section.default_factory
        hints = get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if hints[f.name] in (int, float):
                meta = f.metadata
                assert meta["max"] is not None and (meta["min"] is not None or meta["positive"]), \
                    f"[{section.name}] {f.name}"
