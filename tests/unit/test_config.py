from pathlib import Path

import pytest

from core.config import Config, ensure_config_file, load_config, parse_size, save_config
from core.errors import InvalidInput


def test_defaults_env_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    ensure_config_file(path)
    config = load_config(path, environ={"FETCHDECK_DOWNLOAD_CONNECTIONS": "16", "FETCHDECK_SERVER_ENABLE": "no"})
    assert config.download.connections == 16
    assert config.server.enable is False
    assert config.server.port == 39719
    assert config.override("server", port=1234, host=None).server.port == 1234


def test_save_keeps_comments_and_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('# my notes\n[download]\n# how many\nmax_concurrent = 2 # inline\nmystery = "kept"\n')
    config = load_config(path, environ={})
    config.download.max_concurrent = 5
    config.ui.theme = "nord"
    save_config(path, config)
    text = path.read_text()
    assert "# my notes" in text and "# how many" in text and 'mystery = "kept"' in text
    assert "max_concurrent = 5" in text
    assert load_config(path, environ={}).ui.theme == "nord"


def test_bad_values_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[download]\nmax_concurrent = 'lots'\n")
    with pytest.raises(InvalidInput, match="max_concurrent"):
        load_config(path, environ={})
    path.write_text("[download\n")
    with pytest.raises(InvalidInput):
        load_config(path, environ={})


def test_parse_size() -> None:
    assert parse_size("5M") == 5 * 1024 * 1024
    assert parse_size("1.5k") == 1536
    assert parse_size("") is None and parse_size(0) is None
    with pytest.raises(InvalidInput):
        parse_size("fast")
    assert Config().download.speed_limit_bytes is None
