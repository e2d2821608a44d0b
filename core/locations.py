"""Where fetchdeck keeps its config, its data (database, logs) and downloads."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP = "fetchdeck"


@dataclass(frozen=True, slots=True)
class Locations:
    config_dir: Path
    data_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def database(self) -> Path:
        return self.data_dir / "fetchdeck.db"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def themes_dir(self) -> Path:
        return self.config_dir / "themes"

    @classmethod
    def resolve(cls, data_dir: str | Path | None = None, config_dir: str | Path | None = None) -> Locations:
        """Defaults from platformdirs; FETCHDECK_DATA_DIR/FETCHDECK_CONFIG_DIR and flags override.

        With --data-dir and no explicit config dir, the config lives beside the
        data, so a data dir is a self-contained profile (tests, several instances).
        """
        data = data_dir or os.environ.get("FETCHDECK_DATA_DIR")
        conf = config_dir or os.environ.get("FETCHDECK_CONFIG_DIR")
        data_path = Path(data).expanduser() if data else Path(platformdirs.user_data_dir(APP))
        if conf:
            conf_path = Path(conf).expanduser()
        elif data:
            conf_path = data_path
        else:
            conf_path = Path(platformdirs.user_config_dir(APP))
        return cls(config_dir=conf_path.resolve(), data_dir=data_path.resolve())

    def ensure(self) -> None:
        for d in (self.config_dir, self.data_dir, self.log_dir):
            d.mkdir(parents=True, exist_ok=True)


def default_download_dir() -> Path:
    return Path(platformdirs.user_downloads_dir()) / APP


class DataDirBusy(RuntimeError):
    pass


class DataDirLock:
    """An exclusive lock on a data dir: one engine per database at a time."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "fetchdeck.lock"
        self._fh: object | None = None

    def acquire(self) -> DataDirLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise DataDirBusy(
                f"another fetchdeck is using {self.path.parent}; talk to it with "
                "`fetchdeck add`, or pass a different --data-dir"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # type: ignore[attr-defined]
            self._fh = None
