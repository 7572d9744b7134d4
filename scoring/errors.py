"""The exception type for mistakes a user can fix (and its one special case, a missing API key).

A public module of the library (docs/architecture.md, "The public surface").
"""

__all__ = ["MissingKeyError", "ScoringInputError"]


class ScoringInputError(ValueError):
    """Bad input: the message says what was wrong and how to fix it."""


class MissingKeyError(ScoringInputError):
    """An API simulator found no key: where it looked is in the message."""
