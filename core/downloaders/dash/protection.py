"""DRM signalling in an MPD: which ContentProtection systems a representation names.

fetchdeck decrypts no DRM (ClearKey, Widevine, PlayReady, FairPlay, any cenc
or cbcs scheme): a chosen representation that names one is refused before a
single segment is fetched, with the systems named in the reason.
"""

from __future__ import annotations

from core.downloaders.dash.mpd import Representation
from core.errors import UnsupportedMedia

# ContentProtection@schemeIdUri (lowercased) → the DRM system's name.
SYSTEMS = {
    "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed": "Widevine",
    "urn:uuid:9a04f079-9840-4286-ab92-e65be0885f95": "PlayReady",
    "urn:uuid:79f0049a-4098-8642-ab92-e65be0885f95": "PlayReady",
    "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e": "ClearKey",
    "urn:uuid:1077efec-c0b2-4d02-ace3-3c1e52e2fb4b": "ClearKey",
    "urn:uuid:94ce86fb-07ff-4f43-adb8-93d2fa968ca2": "FairPlay",
    "urn:uuid:5e629af5-38da-4063-8977-97ffbd9902d4": "Marlin",
    "urn:uuid:f239e769-efa3-4850-9c16-a903c6932efb": "Adobe Primetime",
}
COMMON_ENCRYPTION = "urn:mpeg:dash:mp4protection:2011"


def drm_systems(rep: Representation) -> list[str]:
    """The DRM systems (or the common-encryption scheme, 'cenc', 'cbcs') a representation names."""
    names: list[str] = []
    schemes: list[str] = []
    for entry in rep.protection:
        uri, _, value = entry.partition("=")
        if uri == COMMON_ENCRYPTION:
            schemes.append(value or "cenc")
            continue
        name = SYSTEMS.get(uri, uri.removeprefix("urn:uuid:") if uri else "unknown")
        if name not in names:
            names.append(name)
    if names:
        return names
    return list(dict.fromkeys(schemes)) or (["unknown"] if rep.protection else [])


def refuse_drm(reps: list[Representation]) -> None:
    """UnsupportedMedia naming the DRM systems, if any chosen representation is protected."""
    found: list[str] = []
    for rep in reps:
        found += [name for name in drm_systems(rep) if name not in found]
    if found:
        raise UnsupportedMedia(f"DRM-protected stream ({', '.join(found)}): fetchdeck does not decrypt DRM")
