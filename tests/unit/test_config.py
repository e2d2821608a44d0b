import re
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


def test_listen_table_flags_and_env(tmp_path: Path) -> None:
    from core.config import Listener, parse_listen_flag

    path = tmp_path / "config.toml"
    path.write_text('[server]\n# mine\n[server.listen]\ndownie = { address = "127.0.0.1:8000", token = false }\n'
                    'm3u8 = "8080"\nsaveany = "[::1]:8081"\n')
    listen = load_config(path, environ={}).server.listen
    assert listen == {"downie": Listener("downie", "127.0.0.1", 8000, token=False),
                      "m3u8": Listener("m3u8", "", 8080), "saveany": Listener("saveany", "::1", 8081)}
    assert listen["m3u8"].bind_host("0.0.0.0") == "0.0.0.0" and listen["saveany"].bind_host("x") == "::1"
    env = load_config(path, environ={"FETCHDECK_SERVER_LISTEN": "mediago=:9900 downie=localhost:8001,token=false"})
    assert env.server.listen == {"mediago": Listener("mediago", "", 9900),
                                 "downie": Listener("downie", "localhost", 8001, token=False)}
    assert parse_listen_flag("Downie=8000,token=false") == Listener("downie", "", 8000, token=False)
    for bad, why in (("x=1", "unknown dialect"), ("downie", "DIALECT=[HOST:]PORT"), ("downie=a:b", "port from 0"),
                     ("downie=::1:80", "IPv6"), ("downie=70000", "port from 0"), ("downie=1,tls=yes", "only token"),
                     ("downie=h/x:1", "not a host")):
        with pytest.raises(InvalidInput, match=re.escape(why)):
            parse_listen_flag(bad)
    path.write_text('[server.listen]\ndownie = { port = 1 }\n')
    with pytest.raises(InvalidInput, match="unknown key 'port'"):
        load_config(path, environ={})
    # Saved back: an unchanged table keeps its text and comments; a new entry is written in the same forms.
    path.write_text('[server.listen]\ndownie = { address = "127.0.0.1:8000", token = false } # for the extension\n')
    config = load_config(path, environ={})
    config.ui.theme = "nord"
    save_config(path, config)
    assert "# for the extension" in path.read_text()
    config.server.listen["m3u8"] = Listener("m3u8", "127.0.0.1", 8080)
    save_config(path, config)
    assert load_config(path, environ={}).server.listen == config.server.listen
