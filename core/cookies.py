"""Cookie jars: the cookies every download sends, kept per domain on disk, never shown.

Owns the jar (`CookieStore`, an `http.cookiejar.CookieJar`), its files, its imports and the rule of
which cookies a download gets:

- Files: one Netscape cookies.txt per domain in the jar's folder (`<data dir>/cookies/`, or
  `[cookies] dir`): `example.com.txt` holds the cookies whose domain is `example.com` or
  `.example.com`. The folder is 0700, each file 0600, written atomically (a temporary file renamed
  over the old one). Another process (`fetchdeck cookies import`) may change the files while an engine
  runs: the engine's jar notices (the folder's mtime, checked at most once a second) and reloads them.
- Matching: the standard library's rules, as browsers apply them: a cookie for `.example.com` goes to
  `example.com` and every `a.example.com`, one for `example.com` (no dot) to that host only; `secure`
  cookies over https only; paths by prefix; expired cookies never.
- Use: the shared httpx clients (core/downloaders/net.py) are given the jar as their cookie jar, so
  direct and HLS requests (redirects included) send its cookies and every `Set-Cookie` a server answers
  lands in it; yt-dlp runs get the cookies for their URL's site as a cookies.txt in memory
  (`netscape_for`) and hand back what the site set (`merge`). Changes are saved within a second
  (`SAVE_DELAY`) and when the engine closes.
- Imports: cookies.txt text (`import_text`: a file, a paste, an API upload) and an installed browser
  through yt-dlp (`import_browser`), whose failures become one readable `CookieImportError`.
- Secrecy: what leaves this module for a person or an API is an `ImportReport` or `DomainCount`s —
  domains and counts, never a name's value; error messages name line numbers and domains only.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from core.errors import InvalidInput

NETSCAPE_HEADER = "# Netscape HTTP Cookie File\n# Written by fetchdeck: do not share, these are logins.\n\n"
SAVE_DELAY = 1.0  # seconds between a server setting a cookie and the jar's file being written
REFRESH_EVERY = 1.0  # seconds between checks for files changed by another process
MAX_TEXT = 16 * 1024 * 1024  # an import larger than this is no cookies.txt
_HTTPONLY = "#HttpOnly_"
_SAFE_NAME = re.compile(r"[^a-z0-9._-]")


class CookieImportError(InvalidInput):
    """An import that could not be done; str() says why in words a person can act on."""


@dataclass(frozen=True, slots=True)
class DomainCount:
    domain: str
    cookies: int


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import added: how many cookies for which domains (never their values)."""

    domains: tuple[DomainCount, ...]
    source: str = ""

    @property
    def total(self) -> int:
        return sum(d.cookies for d in self.domains)

    def describe(self) -> str:
        if not self.domains:
            return f"no cookies found{f' in {self.source}' if self.source else ''}"
        shown = ", ".join(f"{d.domain} ({d.cookies})" for d in self.domains[:8])
        more = f" and {len(self.domains) - 8} more domains" if len(self.domains) > 8 else ""
        return f"imported {self.total} cookie(s) for {len(self.domains)} domain(s): {shown}{more}"


def domain_key(domain: str) -> str:
    """The jar (and file) a cookie domain belongs to: `.Example.com` → `example.com`."""
    return domain.lstrip(".").lower()


def _file_name(key: str) -> str:
    return quote(key, safe="") if _SAFE_NAME.search(key) else key


def _key_of_file(name: str) -> str:
    return unquote(name[: -len(".txt")])


def counts(cookies: Iterable[http.cookiejar.Cookie]) -> tuple[DomainCount, ...]:
    tally: dict[str, int] = {}
    for cookie in cookies:
        key = domain_key(cookie.domain)
        tally[key] = tally.get(key, 0) + 1
    return tuple(DomainCount(d, n) for d, n in sorted(tally.items()))


# ---- cookies.txt ---------------------------------------------------------------------------------------


def local_name(host: str) -> str:
    """`localhost` → `localhost.local` (http.cookiejar's name for a host without a dot); others unchanged."""
    bare = host.lstrip(".")
    return host + ".local" if bare and "." not in bare and ":" not in bare and "[" not in bare else host


def make_cookie(domain: str, name: str, value: str | None, path: str = "/", secure: bool = False,
                expires: int | None = None, http_only: bool = False) -> http.cookiejar.Cookie:
    """A Netscape cookie as http.cookiejar keeps it (a leading dot: the domain and its subdomains). A host
    without a dot (`localhost`) is named `localhost.local`, as http.cookiejar names the request's host."""
    domain = local_name(domain)
    dot = domain.startswith(".")
    return http.cookiejar.Cookie(
        0, name, value, None, False, domain.lower(), dot, dot, path or "/", bool(path), secure,
        expires or None, not expires, None, None, {"HttpOnly": ""} if http_only else {},
    )


def parse_netscape(text: str, source: str = "cookies.txt") -> list[http.cookiejar.Cookie]:
    """The cookies of a cookies.txt text (expired ones left out). Raises CookieImportError naming the
    line (never its value). Tolerant of what exporters write: CRLF, a missing header, `#HttpOnly_`,
    the include-subdomains flag without a leading dot, expiry 0 or empty (a session cookie)."""
    if len(text) > MAX_TEXT:
        raise CookieImportError(f"{source}: over {MAX_TEXT >> 20} MiB, not a cookies.txt")
    now = time.time()
    out: list[http.cookiejar.Cookie] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r\n")
        http_only = line.startswith(_HTTPONLY)
        if http_only:
            line = line[len(_HTTPONLY):]
        if not line.strip() or line.lstrip().startswith(("#", "$")):
            continue
        fields = line.split("\t")
        if len(fields) == 6:  # some exporters drop an empty value's tab
            fields.append("")
        if len(fields) != 7:
            raise CookieImportError(
                f"{source} line {number}: not a cookies.txt line (7 tab-separated fields: domain, "
                "include-subdomains, path, secure, expiry, name, value)")
        domain, subdomains, path, secure, expiry, name, value = fields
        domain = domain.strip()
        if not domain or any(c.isspace() for c in domain) or "/" in domain:
            raise CookieImportError(f"{source} line {number}: no usable domain")
        if subdomains.upper() == "TRUE" and not domain.startswith("."):
            domain = "." + domain
        try:
            expires = int(float(expiry)) if expiry.strip() else 0
        except ValueError:
            raise CookieImportError(f"{source} line {number} ({domain_key(domain)}): the expiry is no number") from None
        if expires and expires <= now:
            continue
        if not name:
            raise CookieImportError(f"{source} line {number} ({domain_key(domain)}): a cookie without a name")
        out.append(make_cookie(domain, name, value, path, secure.upper() == "TRUE", expires or None, http_only))
    return out


def to_netscape(cookies: Iterable[http.cookiejar.Cookie], header: str = NETSCAPE_HEADER) -> str:
    lines = [header]
    for c in cookies:
        prefix = _HTTPONLY if "httponly" in {k.lower() for k in c._rest} else ""  # type: ignore[attr-defined]
        sub = "TRUE" if c.domain.startswith(".") else "FALSE"
        lines.append(f"{prefix}{c.domain}\t{sub}\t{c.path or '/'}\t{'TRUE' if c.secure else 'FALSE'}\t"
                     f"{int(c.expires) if c.expires else 0}\t{c.name}\t{c.value if c.value is not None else ''}\n")
    return "".join(lines)


# ---- which cookies a URL gets ----------------------------------------------------------------------------


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return ""


def _domain_matches(host: str, domain: str) -> bool:
    """A browser's rule: host is the cookie's domain, or (for a dotted domain) one of its subdomains."""
    bare = domain_key(domain)
    return host == bare or (domain.startswith(".") and host.endswith("." + bare))


def cookies_for_site(jar: http.cookiejar.CookieJar, url: str) -> list[http.cookiejar.Cookie]:
    """The cookies a run on url may need: those its host would be sent (a browser's domain match), and
    those of the site's other hosts (`music.example.com` for `www.example.com`), which yt-dlp's
    extractors call while they work; never another site's."""
    host = local_name(_host(url))
    if not host:
        return []
    site = host[4:] if host.startswith("www.") else host
    now = int(time.time())
    return [c for c in jar if not c.is_expired(now)
            and (_domain_matches(host, c.domain) or domain_key(c.domain) == site
                 or domain_key(c.domain).endswith("." + site))]


def netscape_for(jar: http.cookiejar.CookieJar | None, url: str) -> str | None:
    """cookies_for_site as cookies.txt text (for yt-dlp's cookiefile), None when there are none."""
    if jar is None:
        return None
    chosen = cookies_for_site(jar, url)
    return to_netscape(chosen, "# Netscape HTTP Cookie File\n") if chosen else None


def _identity(c: http.cookiejar.Cookie) -> tuple[str, str, str, str | None]:
    return c.domain.lower(), c.path, c.name, c.value


def merge(jar: http.cookiejar.CookieJar, cookies: Iterable[http.cookiejar.Cookie],
          given: str | None = None) -> int:
    """Keep in jar the cookies of a run that are new or changed compared with `given` (the cookies.txt
    text the run started with: cookies passed unchanged are not the server's). Returns how many."""
    try:
        known = {_identity(c) for c in parse_netscape(given, "given")} if given else set()
    except CookieImportError:
        known = set()
    kept = 0
    for cookie in cookies:
        if _identity(cookie) in known or not cookie.name:
            continue
        jar.set_cookie(cookie)
        kept += 1
    return kept


_COOKIE_FIELD = re.compile(r"(?i)(\b(?:set-)?cookies?[\"']?\s*[:=]\s*)(?:\"[^\"]*\"|'[^']*'|[^\n,}]*)")


def redact_cookies(text: str) -> str:
    """A log line with the value of any Cookie / Set-Cookie header in it replaced by [REDACTED]."""
    if "ookie" not in text:
        return text
    return _COOKIE_FIELD.sub(lambda m: m.group(1) + "[REDACTED]", text)


# ---- the jar on disk -------------------------------------------------------------------------------------


class CookieStore(http.cookiejar.CookieJar):
    """The engine's cookie jar: all domains in memory (for matching), one 0600 file per domain on disk."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory
        self._dirty: set[str] = set()
        self._stamps: dict[str, int] = {}  # domain → mtime_ns of its file as last read or written
        self._dir_stamp: int | None = None
        self._checked = 0.0
        self._save_lock = threading.Lock()
        self._save_pending = False
        self._loading = False

    @classmethod
    def open(cls, directory: Path) -> CookieStore:
        store = cls(directory)
        store.reload()
        return store

    # ---- files ----------------------------------------------------------------
    def _ensure_dir(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if (self.directory.stat().st_mode & 0o777) != 0o700:
            os.chmod(self.directory, 0o700)

    def _files(self) -> dict[str, Path]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return {}
        return {_key_of_file(n): self.directory / n for n in names if n.endswith(".txt") and not n.startswith(".")}

    def _stat_dir(self) -> int | None:
        try:
            return self.directory.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def reload(self) -> None:
        """Read every domain's file again (what another process wrote replaces what is in memory)."""
        with self._cookies_lock:  # type: ignore[attr-defined]
            self._dir_stamp = self._stat_dir()
            files = self._files()
            for key in [k for k in self._stamps if k not in files]:  # a file another process removed
                if key not in self._dirty:
                    self._drop(key)
                del self._stamps[key]
            for key, path in files.items():
                try:
                    stamp = path.stat().st_mtime_ns
                except FileNotFoundError:
                    continue
                if self._stamps.get(key) == stamp:
                    continue
                self._drop(key)
                self._dirty.discard(key)
                try:
                    loaded = parse_netscape(path.read_text(encoding="utf-8", errors="replace"), path.name)
                except (CookieImportError, OSError):
                    loaded = []  # a damaged file: its cookies are not sent (and the file is kept as it is)
                self._loading = True
                try:
                    for cookie in loaded:
                        super().set_cookie(cookie)
                finally:
                    self._loading = False
                self._stamps[key] = stamp
            self._checked = time.monotonic()

    def refresh(self) -> None:
        """reload() if another process changed the folder since we last looked (at most once a second)."""
        now = time.monotonic()
        if now - self._checked < REFRESH_EVERY:
            return
        self._checked = now
        if self._stat_dir() != self._dir_stamp:
            self.reload()

    def save(self) -> None:
        """Write the files of the domains that changed (atomically, 0600). Safe from any thread."""
        with self._save_lock:
            with self._cookies_lock:  # type: ignore[attr-defined]
                dirty, self._dirty = self._dirty, set()
                self._save_pending = False
                by_key: dict[str, list[http.cookiejar.Cookie]] = {k: [] for k in dirty}
                now = int(time.time())
                for cookie in self._all():
                    key = domain_key(cookie.domain)
                    if key in by_key and not cookie.is_expired(now):
                        by_key[key].append(cookie)
            if not by_key:
                return
            self._ensure_dir()
            for key, cookies in by_key.items():
                path = self.directory / f"{_file_name(key)}.txt"
                if not cookies:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                    self._stamps.pop(key, None)
                    continue
                self._stamps[key] = _write_private(path, to_netscape(cookies))
            self._dir_stamp = self._stat_dir()

    def _schedule_save(self) -> None:
        if self._save_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # a thread without a loop: its caller saves (imports, yt-dlp merges)
        self._save_pending = True
        loop.call_later(SAVE_DELAY, lambda: loop.run_in_executor(None, self.save))

    # ---- the jar --------------------------------------------------------------
    def _all(self) -> list[http.cookiejar.Cookie]:
        return list(super().__iter__())

    def _keys(self) -> set[str]:
        return {domain_key(d) for d in self._cookies}  # type: ignore[attr-defined]

    def _drop(self, key: str) -> int:
        """Remove every cookie whose domain is `key` (with or without its dot); how many went."""
        table: dict[str, dict[str, dict[str, http.cookiejar.Cookie]]] = self._cookies  # type: ignore[attr-defined]
        gone = 0
        for domain in [d for d in table if domain_key(d) == key]:
            gone += sum(len(names) for names in table[domain].values())
            del table[domain]
        return gone

    def __iter__(self) -> Iterator[http.cookiejar.Cookie]:
        # httpx copies the jar into every request it builds: pick up other processes' changes here, and
        # iterate a snapshot (a yt-dlp thread may be merging).
        with self._cookies_lock:  # type: ignore[attr-defined]
            self.refresh()
            snapshot = self._all()
        return iter(snapshot)

    def __len__(self) -> int:
        with self._cookies_lock:  # type: ignore[attr-defined]
            return len(self._all())

    def add_cookie_header(self, request: object) -> None:
        with self._cookies_lock:  # type: ignore[attr-defined]
            self.refresh()
            super().add_cookie_header(request)  # type: ignore[arg-type]

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        with self._cookies_lock:  # type: ignore[attr-defined]
            super().set_cookie(cookie)
            if not self._loading:
                self._dirty.add(domain_key(cookie.domain))
                self._schedule_save()

    def clear(self, domain: str | None = None, path: str | None = None, name: str | None = None) -> None:
        with self._cookies_lock:  # type: ignore[attr-defined]
            keys = self._keys() if domain is None else {domain_key(domain)}
            super().clear(domain, path, name)
            self._dirty.update(keys)
            self._schedule_save()

    # ---- what the CLI, the TUI and the API do -----------------------------------------
    def summary(self) -> tuple[DomainCount, ...]:
        return counts(self)

    def add_all(self, cookies: Iterable[http.cookiejar.Cookie], source: str = "") -> ImportReport:
        added = list(cookies)
        with self._cookies_lock:  # type: ignore[attr-defined]
            self.refresh()
            for cookie in added:
                super().set_cookie(cookie)
                self._dirty.add(domain_key(cookie.domain))
        self.save()
        return ImportReport(counts(added), source)

    def import_text(self, text: str, source: str = "the pasted text") -> ImportReport:
        """Add the cookies of a cookies.txt text (replacing those of the same domain, path and name)."""
        return self.add_all(parse_netscape(text, source), source)

    def import_file(self, path: Path) -> ImportReport:
        try:
            text = path.read_text(encoding="utf-8-sig", errors="replace")
        except OSError as exc:
            raise CookieImportError(f"cannot read {path}: {exc.strerror or exc}") from None
        return self.import_text(text, str(path))

    def import_browser(self, spec: str) -> ImportReport:
        """Add the cookies of an installed browser (yt-dlp reads its profile): `firefox`,
        `chrome:Profile 1`, `chromium+gnomekeyring`, `firefox::Container`."""
        return self.add_all(read_browser(spec), f"the {spec.split(':', 1)[0].split('+', 1)[0]} profile")

    def remove(self, domain: str | None = None) -> int:
        """Forget the cookies of a domain and its subdomains (None: all of them); how many went."""
        with self._cookies_lock:  # type: ignore[attr-defined]
            self.refresh()
            keys = self._keys()
            if domain is not None:
                wanted = domain_key(local_name(domain.strip()))
                keys = {k for k in keys if k == wanted or k.endswith("." + wanted)}
            gone = sum(self._drop(k) for k in keys)
            self._dirty.update(keys)
        self.save()
        return gone


def _write_private(path: Path, text: str) -> int:
    """Write text to path atomically, readable by its owner only; returns the file's mtime_ns."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".txt", dir=path.parent)  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fchmod(fh.fileno(), 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path.stat().st_mtime_ns


def default_directory(data_dir: Path) -> Path:
    return data_dir / "cookies"


# ---- browsers, through yt-dlp ----------------------------------------------------------------------------

_SPEC = re.compile(r"^(?P<name>[^+:]+)(?:\s*\+\s*(?P<keyring>[^:]+))?(?:\s*:\s*(?!:)(?P<profile>.+?))?"
                   r"(?:\s*::\s*(?P<container>.+))?$")


class _Collect:
    """yt-dlp's cookie logger: keeps its warnings and errors for the diagnostic."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def debug(self, message: str, only_once: bool = False) -> None:
        pass

    def info(self, message: str, only_once: bool = False) -> None:
        pass

    def warning(self, message: str, only_once: bool = False) -> None:
        if message not in self.messages:
            self.messages.append(message)

    def error(self, message: str, only_once: bool = False) -> None:
        self.warning(message)

    def progress_bar(self) -> None:
        return None


def _diagnose(browser: str, exc: BaseException, said: list[str]) -> str:
    """yt-dlp's failure as one sentence a person can act on."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    lowered = (text + " " + " ".join(said)).lower()
    if "dpapi" in lowered or "10927" in lowered:
        return (f"cannot decrypt {browser}'s cookies: Chrome 127+ on Windows encrypts them for Chrome itself "
                "(app-bound encryption, yt-dlp#10927). Export a cookies.txt with a browser extension and "
                "import that file, or use --from-browser firefox")
    if "7271" in lowered or "could not copy" in lowered:
        return (f"cannot read {browser}'s cookie database while {browser} runs (it locks the file, yt-dlp#7271): "
                f"close {browser} completely and try again, or import an exported cookies.txt")
    if isinstance(exc, FileNotFoundError) or "could not find" in lowered:
        return (f"no {browser} profile with cookies found on this machine ({text}); is {browser} installed "
                f"and started once for this user? A profile can be named: --from-browser {browser}:PROFILE")
    if "keyring" in lowered or "kwallet" in lowered or "secretstorage" in lowered or "no key found" in lowered:
        return (f"cannot decrypt {browser}'s cookies: the keyring holding its key is locked or unreachable "
                f"({'; '.join(said) or text}). Unlock the keyring (log in to the desktop session), or name it: "
                f"--from-browser {browser}+gnomekeyring / +kwallet / +basictext")
    if "database is locked" in lowered:
        return f"{browser}'s cookie database is locked: close {browser} and try again"
    if isinstance(exc, PermissionError):
        return f"no permission to read {browser}'s cookie database: {text}"
    if isinstance(exc, ValueError) and ("unsupported" in lowered or "unknown" in lowered):
        return f"{text}; browsers: brave, chrome, chromium, edge, firefox, opera, safari, vivaldi, whale"
    return f"cannot read cookies from {browser}: {text}"


def read_browser(spec: str) -> list[http.cookiejar.Cookie]:
    """The cookies of an installed browser profile, read by yt-dlp (`BROWSER[+KEYRING][:PROFILE][::CONTAINER]`).
    Raises CookieImportError with a readable diagnostic."""
    match = _SPEC.match(spec.strip())
    if not match:
        raise CookieImportError(f"not a browser: {spec!r} (try firefox, chrome, chrome:PROFILE, firefox::CONTAINER)")
    browser = match.group("name").strip().lower()
    keyring = (match.group("keyring") or "").strip().upper() or None
    profile = match.group("profile")
    container = match.group("container")
    try:
        from yt_dlp.cookies import (  # type: ignore[import-untyped]
            SUPPORTED_BROWSERS,
            SUPPORTED_KEYRINGS,
            extract_cookies_from_browser,
        )
    except ImportError as exc:  # pragma: no cover - yt-dlp is a dependency
        raise CookieImportError(f"browser cookies need yt-dlp ({exc})") from None
    if browser not in SUPPORTED_BROWSERS:
        raise CookieImportError(f"unsupported browser {browser!r}; supported: {', '.join(sorted(SUPPORTED_BROWSERS))}")
    if keyring is not None and keyring not in SUPPORTED_KEYRINGS:
        raise CookieImportError(f"unsupported keyring {keyring.lower()!r}; supported: "
                                f"{', '.join(k.lower() for k in SUPPORTED_KEYRINGS)}")
    logger = _Collect()
    try:
        jar = extract_cookies_from_browser(browser, profile, logger, keyring=keyring, container=container)
    except Exception as exc:  # yt-dlp raises FileNotFoundError, ValueError, DownloadError, sqlite3 errors...
        raise CookieImportError(_diagnose(browser, exc, logger.messages)) from None
    cookies = [make_cookie(c.domain, c.name, c.value, c.path, bool(c.secure), int(c.expires) if c.expires else None)
               for c in jar if c.name]
    if not cookies and logger.messages:
        raise CookieImportError(_diagnose(browser, RuntimeError("no cookies could be read"), logger.messages))
    return cookies
