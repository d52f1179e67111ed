"""Names and keys as fidesops has them (``FidesOpsKey``), for every keyed thing the API creates:
connections, storage destinations, policies, rules and targets. fidesops' duplicate-key wording too."""

from __future__ import annotations

import re

from unidecode import unidecode

from portal.services import ValidationFailed, text_problem

KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")
MAX_NAME_LENGTH = 200
MAX_KEY_LENGTH = 200

_DISALLOWED = re.compile(r"[^a-z0-9_\s-]")
_SEPARATORS = re.compile(r"[\s-]+")
_OUTER_SEPARATORS = re.compile(r"^[\s-]+|[\s-]+$")


def snake_case(text: str) -> str:
    """S2 snake-casing: ASCII, lower case, only ``[a-z0-9_]``; runs of spaces and ``-`` become one ``_``.

    Used for connection keys and for generated ``dsr_package_label``s, so both follow one rule.
    Separators at either end are dropped ("(Beta) -" → ``beta``); the result may be empty.
    """
    text = _DISALLOWED.sub("", unidecode(text or "").lower())
    return _SEPARATORS.sub("_", _OUTER_SEPARATORS.sub("", text))


def generate_key(name: str) -> str:
    key = snake_case(name)
    if not key:
        message = (
            f"Cannot generate a key from the name '{name}': it has no letters or digits. "
            "Provide a key, or a name with letters or digits."
        )
        raise ValidationFailed(message, [(("name",), message)])
    return key[:MAX_KEY_LENGTH]


def duplicate_key_message(key: str, model: str = "ConnectionConfig") -> str:
    return (
        f"Key {key} already exists in {model}. Keys will be snake-cased names if not provided. "
        "If you are seeing this error without providing a key, please provide a key or a different name."
    )


def duplicate_name_message(name: str, model: str = "ConnectionConfig") -> str:
    return f"Name {name} already exists in {model}."


NOUNS = {
    "ConnectionConfig": "connection",
    "StorageConfig": "storage destination",
    "Rule": "rule",
    "RuleTarget": "rule target",
}


def duplicate_key_words(key: str, model: str = "ConnectionConfig") -> str:
    """``duplicate_key_message`` for a person (the HTML UI)."""
    return f"A {NOUNS[model]} with the key {key} already exists: choose another key."


def duplicate_name_words(name: str, model: str = "ConnectionConfig") -> str:
    return f"A {NOUNS[model]} named “{name}” already exists: choose another name."


def fail(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, [((field,), message)])


def text(value, field: str, label: str) -> str:
    """A string without NUL characters or lone surrogates (the database refuses both), or a 422."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise fail(field, f"The {label} must be text.")
    problem = text_problem(value)
    if problem:
        raise fail(field, f"The {label} {problem}.")
    return value


def clean_name(name: str | None) -> str:
    """A stripped, required name of at most 200 characters (of everything keyed)."""
    name = text(name, "name", "name").strip()
    if not name:
        raise fail("name", "A name is required.")
    if len(name) > MAX_NAME_LENGTH:
        raise fail("name", f"The name must be at most {MAX_NAME_LENGTH} characters long.")
    return name


def clean_key(key: str) -> str:
    """A key of the S2 pattern, not only dots (of everything keyed)."""
    key = text(key, "key", "key").strip()
    if len(key) > MAX_KEY_LENGTH:
        raise fail("key", f"The key must be at most {MAX_KEY_LENGTH} characters long.")
    if not KEY_PATTERN.match(key):
        raise fail(
            "key",
            f"Invalid key '{key}': use only letters, digits, '_', '.' and '-' (no spaces).",
        )
    if not key.strip("."):
        # "." and ".." are path segments: a browser or proxy resolves them away, so such a key's pages
        # could never be reached.
        raise fail("key", f"Invalid key '{key}': a key cannot be only dots; add a letter, digit, '_' or '-'.")
    return key


def key_or_generated(key: str | None, name: str) -> str:
    """The key given, checked, or (blank) the one generated from the already-cleaned ``name``."""
    return clean_key(key) if key and text(key, "key", "key").strip() else generate_key(name)
