"""Errors a user is meant to read.

Each carries one sentence that says what went wrong and what to do. Front doors (CLI, HTTP)
print that sentence instead of a traceback.
"""

from __future__ import annotations


class RagError(Exception):
    """Base class for expected failures; ``str(err)`` is the user-facing sentence."""


class ConfigError(RagError):
    """A setting or config file is invalid."""


class ParseError(RagError):
    """A document could not be read; the file is skipped and reported, the run goes on."""


class IndexMissingError(RagError):
    """No index exists at the configured location."""


class IndexLockedError(RagError):
    """Another ingest holds the index's write lock."""


class ModelMismatchError(RagError):
    """The index was built with a different embedding model than the one configured."""


class InputError(RagError):
    """The input folder or path given on the command line is unusable."""


class GenerationError(RagError):
    """The generator failed to produce an answer."""
