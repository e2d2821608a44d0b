"""fetchdeck as a child process: the fleet test's and the scale-out benchmark's nodes on one shared store,
the crash loop's and the API load benchmark's single `serve`.

`NodeProcess` starts `fetchdeck serve` (with the API on a free port) or `fetchdeck worker` as a child
process with its own data dir (`root/name`), the given store URL and node name (none: its own SQLite
store), and its stderr in a log file per run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
URL_LINE = re.compile(r"serving the API on (http://\S+)")
WORKER_LINE = re.compile(r"node \S+: downloading from")


class NodeProcess:
    """One node: `serve` (API and downloads) or `worker` (downloads only)."""

    def __init__(self, name: str, root: Path, *, store_url: str | None, download_dir: str, command: str = "serve",
                 env: dict[str, str] | None = None, config_toml: str = "") -> None:
        self.name, self.command = name, command
        self.data_dir = root / name
        self.store_url, self.download_dir = store_url, download_dir
        self.extra_env = env or {}
        self.config_toml = config_toml
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.runs = 0

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"{self.command}-{self.runs}.log"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 30.0) -> NodeProcess:
        self.runs += 1
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.config_toml:
            (self.data_dir / "config.toml").write_text(self.config_toml, encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FETCHDECK_")}
        for proxy in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            env.pop(proxy, None)
        env.update(PYTHONPATH=str(ROOT), **self.extra_env)
        args = [sys.executable, "-m", "tui.cli", self.command, "--data-dir", str(self.data_dir),
                "--download-dir", self.download_dir]
        if self.store_url is not None:
            args += ["--store", self.store_url, "--node", self.name]
        if self.command == "serve":
            args += ["--port", "0"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=log)
        ready = URL_LINE if self.command == "serve" else WORKER_LINE
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = ready.search(self.log_text())
            if match:
                self.url = match.group(1) if self.command == "serve" else ""
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.log_text()[-3000:]}")
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not start within {timeout} s: {self.log_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: the node dies mid-work, as in a power loss."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        """SIGTERM and wait for the clean exit; its exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            return -9

    def rss_kib(self) -> int:
        """The process's resident memory (KiB)."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0
