"""How to reach the S3-compatible store: `[storage.s3]` in config.toml, each empty key falling back to the
usual AWS variable (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from core.errors import InvalidInput

DEFAULT_REGION = "us-east-1"


class S3Section(Protocol):
    """What `[storage.s3]` holds (core.config.S3Config; named structurally: core.config imports the
    validation rules, which import this package)."""

    @property
    def endpoint_url(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def access_key_id(self) -> str: ...
    @property
    def secret_access_key(self) -> str: ...


@dataclass(frozen=True, slots=True)
class S3Settings:
    endpoint_url: str = ""  # "" → the client's default (AWS itself)
    region: str = DEFAULT_REGION
    access_key_id: str = ""  # "" → the client's own credential chain (profile, instance role...)
    secret_access_key: str = field(default="", repr=False)

    @classmethod
    def from_config(cls, config: S3Section, environ: Mapping[str, str]) -> S3Settings:
        """The config's values, each empty one taken from its AWS_* variable."""

        def pick(value: str, variable: str) -> str:
            return value or environ.get(variable, "").strip()

        endpoint = pick(config.endpoint_url, "AWS_ENDPOINT_URL").rstrip("/")
        if endpoint and not endpoint.lower().startswith(("http://", "https://")):
            raise InvalidInput(f"storage.s3.endpoint_url {endpoint!r}: must be an http:// or https:// URL")
        return cls(
            endpoint_url=endpoint,
            region=pick(config.region, "AWS_REGION") or environ.get("AWS_DEFAULT_REGION", "") or DEFAULT_REGION,
            access_key_id=pick(config.access_key_id, "AWS_ACCESS_KEY_ID"),
            secret_access_key=pick(config.secret_access_key, "AWS_SECRET_ACCESS_KEY"),
        )

    @property
    def where(self) -> str:
        """The store as a reader names it in an error."""
        return self.endpoint_url or f"AWS S3 ({self.region})"
