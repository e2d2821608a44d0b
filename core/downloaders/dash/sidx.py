"""The segment index box (ISO/IEC 14496-12 8.16.3 `sidx`) of a SegmentBase representation.

An on-demand DASH representation is one MP4 file: an init part (ftyp, moov), a
sidx listing each subsegment's size and duration, then the fragments. The MPD
gives the sidx's byte range (SegmentBase@indexRange); `parse_sidx` turns those
bytes into byte ranges of the file, one per segment.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from core.downloaders.hls import ByteRange
from core.errors import DownloadError, UnsupportedMedia


@dataclass(frozen=True, slots=True)
class IndexedSegment:
    byterange: ByteRange
    duration: float  # seconds
    start: int  # presentation time, in the sidx's timescale


def _boxes(data: bytes) -> list[tuple[int, int, bytes]]:
    """(offset, size, type) of the top-level boxes in `data` (a box cut off at the end ends the list)."""
    out = []
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            if offset + 16 > len(data):
                break
            size = struct.unpack_from(">Q", data, offset + 8)[0]
            header = 16
        elif size == 0:
            size = len(data) - offset
        if size < header:
            raise DownloadError(f"bad MP4 box size {size} at byte {offset}")
        out.append((offset, size, kind))
        offset += size
    return out


def parse_sidx(data: bytes, data_offset: int) -> list[IndexedSegment]:
    """The segments a sidx lists; `data` holds the box (maybe with other boxes around it) and starts at byte
    `data_offset` of the file, so the ranges come out as offsets in the file."""
    for offset, size, kind in _boxes(data):
        if kind == b"sidx":
            if offset + size > len(data):
                raise DownloadError("the sidx box is cut off (indexRange too short)")
            return _parse(data[offset : offset + size], data_offset + offset)
    raise DownloadError("no sidx box in the representation's index range")


def _parse(box: bytes, box_offset: int) -> list[IndexedSegment]:
    try:
        version = box[8]
        pos = 12
        _reference_id, timescale = struct.unpack_from(">II", box, pos)
        pos += 8
        if version == 0:
            earliest, first_offset = struct.unpack_from(">II", box, pos)
            pos += 8
        else:
            earliest, first_offset = struct.unpack_from(">QQ", box, pos)
            pos += 16
        _reserved, count = struct.unpack_from(">HH", box, pos)
        pos += 4
        if timescale == 0:
            raise DownloadError("the sidx box has a timescale of 0")
        out = []
        offset = box_offset + len(box) + first_offset  # the anchor is the first byte after the sidx
        time = earliest
        for _ in range(count):
            ref, duration, _sap = struct.unpack_from(">III", box, pos)
            pos += 12
            if ref >> 31:
                raise UnsupportedMedia("a hierarchical segment index (a sidx that points to other sidx boxes)")
            size = ref & 0x7FFFFFFF
            if size == 0:
                raise DownloadError("the sidx box lists an empty segment")
            out.append(IndexedSegment(ByteRange(offset, size), duration / timescale, time))
            offset += size
            time += duration
    except (struct.error, IndexError):
        raise DownloadError("the sidx box is cut off or malformed") from None
    if not out:
        raise DownloadError("the sidx box lists no segments")
    return out
