"""Which representations of a Period to download: one video and one audio.

The video follows the task's quality exactly as an HLS variant does
(core/downloaders/hls playlist `pick_variant`: best, worst, '720p' = the tallest
not above 720, a bandwidth like '800k', 'audio'); the audio is the best-bandwidth
one, from an AdaptationSet marked <Role value="main"> if there is one.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.downloaders.dash.mpd import Period, Representation
from core.downloaders.hls import Variant, pick_variant
from core.errors import DownloadError


@dataclass(frozen=True, slots=True)
class Selection:
    video: Representation | None
    audio: Representation | None

    @property
    def label(self) -> str:
        parts = []
        if self.video is not None:
            size = f"{self.video.height}p" if self.video.height else f"video {self.video.id}"
            parts.append(f"{size} @ {self.video.bandwidth // 1000} kbit/s")
        if self.audio is not None:
            lang = f" {self.audio.language}" if self.audio.language else ""
            parts.append(f"audio{lang} @ {self.audio.bandwidth // 1000} kbit/s")
        return " + ".join(parts)

    def of(self, role: str) -> Representation | None:
        """The representation chosen for a stream role ("video" or "audio")."""
        return self.video if role == "video" else self.audio if role == "audio" else None

    @property
    def chosen(self) -> list[tuple[str, Representation]]:
        return [(role, rep) for role, rep in (("video", self.video), ("audio", self.audio)) if rep is not None]


def best_audio(reps: list[Representation]) -> Representation | None:
    audio = [r for r in reps if r.kind == "audio"]
    main = [r for r in audio if r.main] or audio
    return max(main, key=lambda r: r.bandwidth, default=None)


def select(period: Period, quality: str | None) -> Selection:
    reps = list(period.representations)
    video = [r for r in reps if r.kind == "video"]
    audio = best_audio(reps)
    if (quality or "").strip().lower() == "audio" and audio is not None:
        return Selection(None, audio)
    if not video:
        if audio is None:
            raise DownloadError("the manifest has no video or audio representation")
        return Selection(None, audio)
    by_key = {r.key: r for r in video}
    variants = [Variant(url=r.key, bandwidth=r.bandwidth, height=r.height, codecs=r.codecs, audio_group=None)
                for r in video]
    picked = by_key[pick_variant(variants, quality).url]
    return Selection(picked, audio)
