"""The terminal side of fetchdeck: the command line, the Textual TUI and the remote client."""

__version__ = "0.1.0"  # the one place the version is written: pyproject.toml reads it (tool.setuptools.dynamic)
