"""The typed config (core/config.py): ranges declared once, layering precedence, unknown keys reported,
comments and unknown keys kept by a save, one-line errors naming the key and what it takes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.config import (
    _TEMPLATE,
    SECTIONS,
    BadValue,
    Config,
    Listener,
    check_value,
    describe,
    ensure_config_file,
    load_config,
    save_config,
)
from core.errors import InvalidInput
from tui.commands import main


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


# ---- ranges and types: one declaration, one message ----------------------------------------------


@pytest.mark.parametrize(("section", "key", "good", "bad", "rule"), [
    ("download", "max_concurrent", 64, 65, "a whole number from 1 to 64"),
    ("download", "connections", 1, 0, "a whole number from 1 to 64"),
    ("download", "segment_threads", 64, 100, "a whole number from 1 to 64"),
    ("download", "retries", 0, -1, "a whole number of at least 0"),
    ("download", "read_timeout", 0.5, 0, "a number above 0"),
    ("server", "port", 65535, 65536, "a whole number from 1 to 65535, or 0 for any free port"),
    ("server", "max_body_bytes", 1000, 0, "a whole number of at least 1"),
    ("api", "webhook_timeout", 0.1, -1.0, "a number above 0"),
    ("aria2", "poll_interval", 0.1, 0.0, "a number above 0"),
])
def test_ranges_are_declared_once_and_named_in_the_error(
    tmp_path: Path, section: str, key: str, good: object, bad: object, rule: str,
) -> None:
    assert describe(section, key) == rule
    assert getattr(getattr(load_config(write(tmp_path, f"[{section}]\n{key} = {good}\n"), environ={}), section),
                   key) == good
    path = write(tmp_path, f"[{section}]\n{key} = {bad}\n")
    with pytest.raises(BadValue) as caught:
        load_config(path, environ={})
    assert str(caught.value) == f"{path}: {section}.{key}: must be {rule}, not {bad!r}"
    assert "\n" not in str(caught.value)
    # the same rule for an environment variable, a command-line flag and an assignment at run time
    var = f"FETCHDECK_{section.upper()}_{key.upper()}"
    with pytest.raises(BadValue, match=f"^{var}: {section}.{key}: must be {re.escape(rule)}, not '{bad}'$"):
        load_config(tmp_path / "missing.toml", environ={var: str(bad)})
    with pytest.raises(BadValue, match=f"^{section}.{key}: must be {re.escape(rule)}"):
        Config().override(section, **{key: bad})
    config = Config()
    with pytest.raises(BadValue, match=re.escape(rule)):
        setattr(getattr(config, section), key, bad)
    assert getattr(getattr(config, section), key) == SECTIONS[section].model_fields[key].default


def test_types_are_coerced_as_the_file_and_the_environment_write_them(tmp_path: Path) -> None:
    env = {"FETCHDECK_SERVER_ENABLE": "off", "FETCHDECK_SERVER_ALLOW_EXTENSIONS": "yes",
           "FETCHDECK_SERVER_CORS_ORIGINS": "http://a.example, http://b.example",
           "FETCHDECK_DOWNLOAD_READ_TIMEOUT": " 1.5 ", "FETCHDECK_SERVER_PORT": "0"}
    config = load_config(write(tmp_path, '[server]\ntoken = 12345\n[download]\nconnections = "4"\n'), environ=env)
    assert config.server.enable is False and config.server.allow_extensions is True
    assert config.server.cors_origins == ["http://a.example", "http://b.example"]
    assert config.download.read_timeout == 1.5 and config.download.connections == 4
    assert config.server.token == "12345"  # a bare number is the text it spells
    assert config.server.port == 0  # any free port
    for text, why in (("[server]\nenable = 'maybe'\n", "server.enable: must be true or false, not 'maybe'"),
                      ("[download]\nretries = true\n", "download.retries: must be a whole number of at least 0"),
                      ("[download]\nconnections = 2.5\n", "download.connections: must be a whole number from 1"),
                      ("[download]\nspeed_limit = 'fast'\n", "download.speed_limit: not a size: 'fast'"),
                      ("[download]\nproxy = 'ftp://p:1'\n", "download.proxy: proxy 'ftp://p:1': must look like"),
                      ("[aria2]\nrpc_url = 'ftp://x/jsonrpc'\n", "aria2.rpc_url: invalid URL 'ftp://x/jsonrpc'"),
                      ("[server.listen]\nsmtp = '25'\n", "server.listen: unknown dialect 'smtp'"),
                      ("download = 3\n", "download must be a table")):
        with pytest.raises(InvalidInput, match=re.escape(why)):
            load_config(write(tmp_path, text), environ={})


def test_check_value_is_what_the_settings_screen_uses() -> None:
    assert check_value("download", "max_concurrent", " 7 ") == 7
    assert check_value("download", "proxy", " socks5://127.0.0.1:1080 ") == "socks5://127.0.0.1:1080"
    assert check_value("download", "speed_limit", "5M") == "5M"
    with pytest.raises(BadValue) as caught:
        check_value("server", "port", "99999")
    assert caught.value.rule == "must be a whole number from 1 to 65535, or 0 for any free port"
    assert caught.value.key == "server.port"
    with pytest.raises(BadValue) as caught:
        check_value("download", "proxy", "no-scheme")
    assert caught.value.rule.startswith("proxy 'no-scheme': must look like http://")  # core/validation.py's rule


# ---- layering: defaults < file < environment < flags ---------------------------------------------


def test_precedence_defaults_file_env_flags(tmp_path: Path) -> None:
    path = write(tmp_path, "[download]\nconnections = 4\nretries = 2\nsegment_threads = 5\n")
    env = {"FETCHDECK_DOWNLOAD_RETRIES": "3", "FETCHDECK_DOWNLOAD_SEGMENT_THREADS": "6"}
    config = load_config(path, environ=env).override("download", segment_threads=7, retries=None)
    assert config.download.max_concurrent == 3  # default
    assert config.download.connections == 4  # file
    assert config.download.retries == 3  # environment over file; a None flag changes nothing
    assert config.download.segment_threads == 7  # flag over environment
    with pytest.raises(InvalidInput, match=r"download\.conections: no such setting"):
        config.override("download", conections=2)


def test_the_template_says_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    ensure_config_file(path)
    assert path.read_text() == _TEMPLATE
    assert load_config(path, environ={}, report=pytest.fail) == Config()


# ---- unknown keys: reported, ignored, kept in the file ---------------------------------------------


def test_unknown_keys_are_reported_with_their_file_or_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "[download]\nmax_concurent = 5\n[downlod]\ndir = 'x'\n")
    reported: list[str] = []
    config = load_config(path, environ={"FETCHDECK_SERVER_PROT": "1", "FETCHDECK_SERVER": "http://x",
                                        "FETCHDECK_DATA_DIR": "/d"}, report=reported.append)
    assert config.download.max_concurrent == 3
    assert reported == [f"{path}: unknown key download.max_concurent (ignored)",
                        f"{path}: unknown key downlod (ignored)",
                        "FETCHDECK_SERVER_PROT: unknown key server.prot (ignored)"]


def test_unknown_keys_go_to_the_log_by_default(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, "[ui]\nthem = 'nord'\n")
    with caplog.at_level("WARNING", logger="fetchdeck.config"):
        load_config(path, environ={})
    assert caplog.messages == [f"{path}: unknown key ui.them (ignored)"]


def test_the_cli_prints_unknown_keys_and_bad_flags_on_one_line(tmp_path: Path) -> None:
    write(tmp_path, "# mine\n[download]\nmax_concurent = 5\n")
    result = CliRunner().invoke(
        main, ["get", "http://127.0.0.1:9/f.bin", "--data-dir", str(tmp_path), "--speed-limit", "fast"],
        env={"FETCHDECK_CONFIG_DIR": None, "FETCHDECK_DATA_DIR": None})
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert f"fetchdeck: {tmp_path.resolve() / 'config.toml'}: unknown key download.max_concurent (ignored)" in lines
    assert "fetchdeck: download.speed_limit: not a size: 'fast' (try 5M, 500K, 1048576)" in lines
    assert "Traceback" not in result.output


# ---- saving: comments, layout and unknown keys survive -----------------------------------------------


def test_save_keeps_comments_unknown_keys_and_unchanged_spellings(tmp_path: Path) -> None:
    text = ('# top note\n[download]\n# how many at once\nmax_concurrent = 2  # inline\nconnections = "8"\n'
            'max_concurent = 9  # a typo, kept\n[mystery]\nkey = 1\n[ui]\ntheme = "nord"\n')
    path = write(tmp_path, text)
    config = load_config(path, environ={}, report=lambda _: None)
    save_config(path, config)
    assert path.read_text() == text  # nothing changed: byte for byte the same ("8" means 8)
    save_config(path, config.override("download", max_concurrent=4).override("server", token="t0k"))
    saved = path.read_text()
    for kept in ("# top note", "# how many at once", "# inline", 'connections = "8"', "max_concurent = 9  # a typo",
                 "[mystery]\nkey = 1"):
        assert kept in saved
    assert "max_concurrent = 4" in saved and 'token = "t0k"' in saved
    assert "[api]" not in saved and "[aria2]" not in saved  # no empty sections for defaults
    again = load_config(path, environ={}, report=lambda _: None)
    assert again.download.max_concurrent == 4 and again.server.token == "t0k" and again.ui.theme == "nord"


def test_save_keeps_a_section_split_around_another(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nport = 1234  # mine\n[ui]\ntheme = "nord"\n'
                           '[server.listen]\ndownie = { address = "127.0.0.1:8000", token = false }\n')
    config = load_config(path, environ={})
    assert config.server.listen == {"downie": Listener("downie", "127.0.0.1", 8000, token=False)}
    save_config(path, config.override("server", token="abc"))
    saved = load_config(path, environ={})
    assert saved.server.port == 1234 and saved.server.token == "abc" and saved.server.listen == config.server.listen
    assert "port = 1234  # mine" in path.read_text()
