"""The one exception type for mistakes a user can fix."""


class ScoringInputError(ValueError):
    """Bad input: the message says what was wrong and how to fix it."""
