"""Extra yt-dlp command-line flags (SaveAny-Bot's `flags`), through an allow-list.

Flags are parsed with yt-dlp's own option parser, so abbreviations
(`--exe`), `--opt=value`, bundled short options (`-xk`) and preset aliases
(`-t mp3`) all resolve to the option yt-dlp would really apply. Every option
occurrence is checked *before* yt-dlp processes it, against an allow-list of
option destinations: format choice, audio extraction/remux, subtitles and
metadata embedding, playlist selection, filters, network and retry tuning,
site logins. Rejected: anything that runs a program (`--exec`,
`--downloader`, `--netrc-cmd`, `--postprocessor-args`, plugins), chooses or
writes paths (`-o`, `--paths`, `--download-archive`, `--cookies FILE`,
`--cache-dir`, `--print-to-file`), reads local files (config, batch files,
info JSON, netrc, certificates, browser cookies), or turns the download into
something else (`--print`, `--simulate`, `--update`...). Bare words (URLs)
are rejected too: the task's URL is the URL.
"""

from __future__ import annotations

import functools
import optparse
from collections.abc import Callable, Sequence
from typing import Any

from core.errors import InvalidInput

MAX_FLAGS = 64
MAX_FLAG_CHARS = 4096

ALLOWED_DESTS: frozenset[str] = frozenset({
    # format choice
    "format", "format_sort", "format_sort_force", "merge_output_format", "prefer_free_formats",
    "allow_multiple_video_streams", "allow_multiple_audio_streams", "check_formats",
    "allow_unplayable_formats",
    # post-processing with the bundled ffmpeg
    "extractaudio", "audioformat", "audioquality", "remuxvideo", "recodevideo", "embedsubtitles",
    "embedthumbnail", "addmetadata", "addchapters", "embed_infojson", "convertsubtitles",
    "convertthumbnails", "parse_metadata", "metafromtitle", "nopostoverwrites", "fixup",
    # side files (moved next to the final file)
    "writesubtitles", "writeautomaticsub", "allsubtitles", "subtitleslangs", "subtitlesformat",
    "writethumbnail", "writedescription",
    # playlist selection and filters
    "playlist_items", "playliststart", "playlistend", "noplaylist", "playlist_reverse",
    "playlist_random", "lazy_playlist", "match_filter", "breaking_match_filter", "matchtitle",
    "rejecttitle", "min_filesize", "max_filesize", "date", "datebefore", "dateafter", "min_views",
    "max_views", "age_limit", "max_downloads", "skip_playlist_after_errors", "break_on_reject",
    "live_from_start", "wait_for_video",
    # network, retries, speed
    "proxy", "socket_timeout", "source_address", "impersonate", "geo_verification_proxy",
    "geo_bypass", "no_check_certificate", "prefer_insecure", "legacy_server_connect", "headers",
    "referer", "user_agent", "sleep_interval", "max_sleep_interval", "sleep_interval_requests",
    "sleep_interval_subtitles", "retries", "fragment_retries", "extractor_retries",
    "file_access_retries", "retry_sleep", "skip_unavailable_fragments",
    "concurrent_fragment_downloads", "ratelimit", "throttledratelimit", "http_chunk_size",
    "buffersize", "noresizebuffer", "hls_use_mpegts", "hls_split_discontinuity", "dynamic_mpd",
    "continue_dl", "updatetime",
    # extractors and site logins
    "extractor_args", "force_generic_extractor", "allowed_extractors", "username", "password",
    "twofactor", "videopassword", "ap_mso", "ap_username", "ap_password", "mark_watched",
    # output verbosity (the task log)
    "no_warnings", "quiet",
})

_RUNS = "it runs other programs"
_PATHS = "fetchdeck decides where files go"
_READS = "it reads or writes files outside the download folder"
_NO_DL = "the task would not download the media"
DENY_REASONS: dict[str, str] = {
    "exec_cmd": _RUNS, "exec_before_dl_cmd": _RUNS, "netrc_cmd": _RUNS, "external_downloader": _RUNS,
    "external_downloader_args": _RUNS, "postprocessor_args": "it passes raw arguments to ffmpeg",
    "add_postprocessors": "it loads plugins", "plugin_dirs": "it loads plugins",
    "remote_components": "it downloads code", "js_runtimes": _RUNS, "hls_prefer_native": _RUNS,
    "download_ranges": _RUNS,
    "outtmpl": _PATHS, "paths": _PATHS, "outtmpl_na_placeholder": _PATHS, "restrictfilenames": _PATHS,
    "windowsfilenames": _PATHS, "trim_file_name": _PATHS, "useid": _PATHS, "autonumber_size": _PATHS,
    "autonumber_start": _PATHS, "nopart": "downloads must stay resumable", "overwrites": _PATHS,
    "keepvideo": _PATHS, "keep_fragments": _PATHS, "split_chapters": _PATHS,
    "config_locations": "it loads config files", "ignoreconfig": "it loads config files",
    "batchfile": _READS, "load_info_filename": _READS, "cookiefile": _READS, "cookiesfrombrowser": _READS,
    "netrc_location": _READS, "usenetrc": _READS, "client_certificate": _READS,
    "client_certificate_key": _READS, "client_certificate_password": _READS, "download_archive": _READS,
    "force_write_download_archive": _READS, "cachedir": _READS, "rm_cachedir": _READS,
    "print_to_file": _READS, "ffmpeg_location": "fetchdeck uses its bundled ffmpeg", "write_pages": _READS,
    "writeinfojson": _READS, "writelink": _READS, "writeurllink": _READS, "writewebloclink": _READS,
    "writedesktoplink": _READS, "xattrs": _READS, "enable_file_urls": _READS, "load_pages": _READS,
    "update_self": "it updates yt-dlp", "print_help": _NO_DL, "simulate": _NO_DL, "skip_download": _NO_DL,
    "forceprint": _NO_DL, "dumpjson": _NO_DL, "dump_single_json": _NO_DL, "print_json": _NO_DL,
    "listformats": _NO_DL, "listsubtitles": _NO_DL, "list_thumbnails": _NO_DL, "list_extractors": _NO_DL,
    "list_extractor_descriptions": _NO_DL, "list_impersonate_targets": _NO_DL, "ap_list_mso": _NO_DL,
    "extract_flat": _NO_DL, "test": _NO_DL,
}
# Options yt-dlp runs for their side effect whatever their destination.
_DENY_OPTION_STRINGS = {
    "--version": _NO_DL, "--alias": "it defines new options", "--dump-user-agent": _NO_DL,
    "-C": _NO_DL, "--call-home": _NO_DL, "--youtube-print-sig-code": _NO_DL,
    "--sponskrub-location": _RUNS, "--sponskrub-args": _RUNS, "--cn-verification-proxy": _READS,
}
_PRESET_OPTION = "--preset-alias"


class _Rejected(InvalidInput):
    pass


def _is_preset(option: optparse.Option) -> bool:
    return _PRESET_OPTION in option._long_opts


def _check(option: optparse.Option, opt_str: str) -> None:
    if _is_preset(option):
        return  # -t NAME: the options it expands to are checked one by one
    names = [*option._short_opts, *option._long_opts]
    deny = next((_DENY_OPTION_STRINGS[n] for n in names if n in _DENY_OPTION_STRINGS), None)
    dest = option.dest
    if deny is None and dest in ALLOWED_DESTS:
        return
    reason = deny or DENY_REASONS.get(dest or "", "it is not on fetchdeck's allow-list")
    shown = option._long_opts[0] if option._long_opts else opt_str
    also = f" ({opt_str})" if opt_str != shown else ""
    raise _Rejected(f"yt-dlp flag {shown}{also} is not allowed: {reason}")


def _guard(option: optparse.Option, touched: set[str]) -> Callable[..., Any]:
    original = option.process

    def process(opt: str, value: Any, values: Any, parser: Any) -> Any:
        _check(option, opt)
        if option.dest:
            touched.add(option.dest)
        return original(opt, value, values, parser)

    return process


def _clean_error(text: str) -> str:
    lines = [ln for ln in str(text).strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else str(text)
    return last.split("error:", 1)[-1].strip()


def validate_ytdlp_flags(flags: Sequence[str]) -> list[str]:
    """Check extra yt-dlp flags; return them as a list, or raise InvalidInput.

    Nothing is run: options are checked as the parser meets them, before
    their actions; then yt-dlp's own validation of the combination runs.
    """
    if isinstance(flags, str):
        raise InvalidInput("yt-dlp flags must be a list of strings")
    items = list(flags)
    if len(items) > MAX_FLAGS:
        raise InvalidInput(f"at most {MAX_FLAGS} yt-dlp flags")
    for item in items:
        if not isinstance(item, str):
            raise InvalidInput("yt-dlp flags must be strings")
        if len(item) > MAX_FLAG_CHARS or any(c in item for c in "\x00\r\n"):
            raise InvalidInput(f"yt-dlp flag {item[:40]!r} is too long or has control characters")
    if not items:
        return []
    _touched_dests(tuple(items))
    return items


@functools.lru_cache(maxsize=256)
def _touched_dests(items: tuple[str, ...]) -> frozenset[str]:
    """Parse with every option guarded; → the option destinations the flags set."""
    from yt_dlp.options import create_parser  # type: ignore[import-untyped]

    parser = create_parser()
    touched: set[str] = set()
    for option in parser._get_all_options():
        option.process = _guard(option, touched)
    try:
        _values, rest = parser.parse_known_args(items, strict=True)
    except _Rejected:
        raise
    except (optparse.OptParseError, ValueError) as exc:
        raise InvalidInput(f"bad yt-dlp flags: {_clean_error(str(exc))}") from None
    for word in rest:
        if word.startswith("-"):
            raise InvalidInput(f"unknown yt-dlp flag {word}")
        raise InvalidInput(f"yt-dlp flags may not contain URLs or other bare words: {word[:80]!r}")
    _parse_to_params(items)  # yt-dlp's own checks of the combination
    return frozenset(touched)


@functools.cache
def _base_params() -> dict[str, Any]:
    import yt_dlp  # type: ignore[import-untyped]

    return dict(yt_dlp.parse_options([]).ydl_opts)


def _parse_to_params(flags: tuple[str, ...]) -> dict[str, Any]:
    import yt_dlp

    try:
        return dict(yt_dlp.parse_options(list(flags)).ydl_opts)
    except (optparse.OptParseError, ValueError) as exc:
        raise InvalidInput(f"bad yt-dlp flags: {_clean_error(str(exc))}") from None
    except SystemExit:
        raise InvalidInput("bad yt-dlp flags") from None


# Parameters fetchdeck always sets itself, whatever the flags say.
CONTROLLED_PARAMS = frozenset({
    "outtmpl", "paths", "logger", "progress_hooks", "postprocessor_hooks", "post_hooks", "ffmpeg_location",
    "noprogress", "extract_flat", "cookiefile", "cookiesfrombrowser", "exec_cmd", "external_downloader",
    "postprocessor_args", "download_archive", "cachedir", "batchfile", "nopart", "simulate", "skip_download",
    "forceprint", "print_to_file", "consoletitle", "color", "verbose", "progress_with_newline",
})


# Params whose fetchdeck default differs from yt-dlp's: a flag setting them back to
# yt-dlp's default (e.g. --yes-playlist) must still win. param → option destination.
_OWN_DEFAULTS = {
    "noplaylist": "noplaylist", "updatetime": "updatetime", "retries": "retries",
    "fragment_retries": "fragment_retries", "socket_timeout": "socket_timeout", "continuedl": "continue_dl",
    "concurrent_fragment_downloads": "concurrent_fragment_downloads", "quiet": "quiet",
}


def flags_to_params(flags: Sequence[str]) -> dict[str, Any]:
    """The YoutubeDL params the (validated) flags change, as yt-dlp's CLI would set them.

    `postprocessors` holds only the post-processors the flags add.
    """
    items = validate_ytdlp_flags(flags)
    if not items:
        return {}
    touched = _touched_dests(tuple(items))
    base = _base_params()
    mine = _parse_to_params(tuple(items))
    delta = {k: v for k, v in mine.items() if k not in CONTROLLED_PARAMS and (k not in base or base[k] != v)}
    for key, dest in _OWN_DEFAULTS.items():
        if dest in touched and key in mine:
            delta[key] = mine[key]
    if "postprocessors" in delta:
        base_pps = base.get("postprocessors") or []
        delta["postprocessors"] = [pp for pp in delta["postprocessors"] if pp not in base_pps]
    return delta
