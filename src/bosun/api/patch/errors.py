"""The one error every patch flavour raises; its message is shown to the user."""

from __future__ import annotations


class PatchError(Exception):
    """A patch that cannot be applied. ``code`` is the HTTP status the server should answer."""

    def __init__(self, message: str, code: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
