"""Post-finish commands (`[hooks] on_success` / `on_failure`): a program run with the task's data, never a shell.

The command is the config's argv (a TOML array, or one config string split with shlex: only the
config value is ever split, never task data). In each argument the placeholders {file}, {id},
{name}, {url}, {status}, {error}, {kind} are replaced by the task's values (plain substitution, one
argument stays one argument whatever it contains); without a {file} anywhere, the file path is
appended as the last argument (when there is a file). The environment adds FETCHDECK_TASK_ID,
FETCHDECK_FILE, FETCHDECK_NAME, FETCHDECK_URL, FETCHDECK_STATUS, FETCHDECK_ERROR, FETCHDECK_KIND,
FETCHDECK_SIZE, FETCHDECK_FOLDER; stdin is the JSON `TaskReport`. stdout and stderr go to the task
log (the last MAX_LINES lines); after `[hooks] timeout` the program and its process group are killed.
Exit 0 delivers; another exit status, a timeout or a program that cannot start is a failed attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Mapping, Sequence

from core.notify.channel import DeliveryFailed, TaskLog
from core.notify.report import TaskReport

MAX_LINES = 40  # output lines kept in the task log per run (the last ones)
MAX_LINE = 500  # characters per line
MAX_OUTPUT = 256 * 1024  # bytes of output read per run; the rest is discarded


_PLACEHOLDER = re.compile(r"\{(?:file|id|name|url|status|error|kind)\}")


def placeholders(report: TaskReport) -> dict[str, str]:
    return {"{file}": report.file or "", "{id}": str(report.task_id), "{name}": report.name,
            "{url}": report.url, "{status}": report.status.value, "{error}": report.error or "",
            "{kind}": report.kind.value}


def command_line(argv: Sequence[str], report: TaskReport) -> list[str]:
    """The argv to run: each config argument with the placeholders replaced; the file last without {file}."""
    values = placeholders(report)
    # one pass: a value that itself contains "{url}" (a file name may) is not expanded again
    out = [_PLACEHOLDER.sub(lambda m: values[m.group(0)], arg) for arg in argv]
    if report.file and not any("{file}" in arg for arg in argv):
        out.append(report.file)
    return out


def environment(report: TaskReport, base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update({
        "FETCHDECK_TASK_ID": str(report.task_id), "FETCHDECK_FILE": report.file or "",
        "FETCHDECK_NAME": report.name, "FETCHDECK_URL": report.url, "FETCHDECK_STATUS": report.status.value,
        "FETCHDECK_ERROR": report.error or "", "FETCHDECK_KIND": report.kind.value,
        "FETCHDECK_SIZE": "" if report.size is None else str(report.size), "FETCHDECK_FOLDER": report.folder,
    })
    return env


def _output_lines(data: bytes) -> list[str]:
    lines = data.decode("utf-8", "replace").splitlines()
    out = [line[:MAX_LINE] + ("…" if len(line) > MAX_LINE else "") for line in lines if line.strip()]
    if len(out) > MAX_LINES:
        return [f"({len(out) - MAX_LINES} earlier lines not kept)", *out[-MAX_LINES:]]
    return out


async def _read_capped(stream: asyncio.StreamReader) -> bytes:
    kept = bytearray()
    while chunk := await stream.read(65536):
        if len(kept) < MAX_OUTPUT:
            kept += chunk[: MAX_OUTPUT - len(kept)]
    return bytes(kept)


def _kill(process: asyncio.subprocess.Process) -> None:
    if hasattr(os, "killpg"):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # the hook's children too (it leads its own session)
    with contextlib.suppress(ProcessLookupError):
        process.kill()


class HookChannel:
    """One configured command for one outcome."""

    def __init__(self, argv: Sequence[str], *, timeout: float, retries: int, when: str) -> None:
        self.argv = list(argv)
        self.timeout = timeout
        self.retries = retries
        self.label = f"hook {when} {os.path.basename(self.argv[0])}"

    async def send(self, report: TaskReport, log: TaskLog) -> str:
        argv = command_line(self.argv, report)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, env=environment(report), start_new_session=True,
            )
        except OSError as exc:
            raise DeliveryFailed(f"cannot run {argv[0]!r}: {exc.strerror or exc}", retry=False) from None
        assert process.stdin is not None and process.stdout is not None
        reader = asyncio.ensure_future(_read_capped(process.stdout))
        try:
            async with asyncio.timeout(self.timeout):
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a hook need not read stdin
                    process.stdin.write(report.body())
                    await process.stdin.drain()
                process.stdin.close()
                output = await reader
                code = await process.wait()
        except TimeoutError:
            _kill(process)
            await process.wait()
            reader.cancel()
            raise DeliveryFailed(f"killed after {self.timeout:g} s") from None
        except BaseException:
            _kill(process)
            reader.cancel()
            raise
        for line in _output_lines(output):
            log(f"{self.label}: {line}")
        if code != 0:
            raise DeliveryFailed(f"exit status {code}" if code > 0 else f"killed by signal {-code}")
        return "exit 0"
