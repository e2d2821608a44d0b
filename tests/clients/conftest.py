"""The real clients' requests against a real fetchdeck: the same server fixtures as tests/api."""

from tests.api.compat_support import make_compat
from tests.api.conftest import api, files, make_api

__all__ = ["api", "files", "make_api", "make_compat"]
