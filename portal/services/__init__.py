"""Business rules, one module per feature. Functions take plain values, change the session, raise
``DomainError`` subclasses, and never commit: the caller (view, API handler, CLI, task) owns the
transaction."""


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored as text (None when it can): databases refuse both of these."""
    if "\x00" in value:
        return "must not contain null characters (\\u0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must not contain invalid Unicode (a lone surrogate such as \\ud800)"
    return None


class DomainError(Exception):
    """A rule was broken. ``str(error)`` is the message the API answers (fidesops' wording where fidesops
    has one: "ConnectionConfig", "pii_field"); ``words`` says the same for a person reading the HTML UI."""

    def __init__(self, message: str = "", *, words: str | None = None):
        super().__init__(message)
        self.words = words or message


class NotFound(DomainError):
    pass


class Conflict(DomainError):
    pass


class FieldsChanged(Conflict):
    """A webhook's field list changed since the caller read it (a form built from an older version)."""


class Forbidden(DomainError):
    """The caller may not do this, whatever the object's state (HTTP 403)."""


class InvalidState(DomainError):
    """The object is not in a state that allows this action (HTTP 400)."""


class ValidationFailed(DomainError):
    """Input broke field rules; ``errors`` maps a location (tuple) to messages."""

    def __init__(
        self,
        message: str,
        errors: list[tuple[tuple, str]] | None = None,
        *,
        words: str | None = None,
        error_words: list[str] | None = None,
    ):
        super().__init__(message, words=words)
        self.errors = errors or []
        # ``errors``' messages in words, in the same order (the HTML UI shows these beside each input).
        self.error_words = error_words or [message for _, message in self.errors]
