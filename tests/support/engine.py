"""A Config for an in-process Engine in tests: downloads under tmp_path/dl, any [download] key overridden."""

from __future__ import annotations

from pathlib import Path

from core.config import Config


def engine_config(tmp_path: Path, **download: object) -> Config:
    config = Config()
    config.download.dir = str(tmp_path / "dl")
    for key, value in download.items():
        setattr(config.download, key, value)
    return config
