"""Identities and search terms (S2, S3): normalising an email or phone number, the keyed hashes (blind
indexes) requests are found by, and turning what staff type into a search that never puts personal data in
a URL."""

from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import or_, select

from portal.crypto import Keyring, keyring
from portal.extensions import db
from portal.models import PrivacyRequest
from portal.services import NotFound, ValidationFailed

PHONE_RE = re.compile(r"^\+?[0-9]{6,15}$")


def normalize_email(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValidationFailed(f"Invalid email address: {exc}", [(("identity", "email"), str(exc))]) from exc


def normalize_phone(phone: str) -> str:
    compact = re.sub(r"[\s().-]", "", phone)
    if not PHONE_RE.match(compact):
        message = "Invalid phone number: use digits, optionally starting with + (6 to 15 digits)."
        raise ValidationFailed(message, [(("identity", "phone_number"), message)])
    return compact


def normalize_identity(email: str | None, phone_number: str | None) -> dict[str, str]:
    for name, value in (("email", email), ("phone_number", phone_number)):
        if value is not None and not isinstance(value, str):
            message = f"The {name.replace('_', ' ')} must be text."
            raise ValidationFailed(message, [(("identity", name), message)])
    identity: dict[str, str] = {}
    if email and email.strip():
        identity["email"] = normalize_email(email)
    if phone_number and phone_number.strip():
        identity["phone_number"] = normalize_phone(phone_number)
    if not identity:
        message = "Provide an email address or a phone number for the data subject."
        raise ValidationFailed(message, [(("identity",), message)])
    return identity


def identity_index(value: str) -> str:
    return keyring().blind_index(value)


EXTERNAL_ID_PURPOSE = "external_id"


def external_id_index(external_id: str, ring: Keyring | None = None) -> str:
    """The blind index of an external id: surrounding spaces and case do not matter to a search."""
    return (ring or keyring()).blind_index(external_id.strip().casefold(), purpose=EXTERNAL_ID_PURPOSE)


def normalized_identity(term: str) -> str | None:
    """An email address or phone number as stored (normalised), or None when ``term`` is neither."""
    term = term.strip()
    try:
        return normalize_email(term) if "@" in term else normalize_phone(term)
    except ValidationFailed:
        return None


def identity_hash_for(term: str) -> str:
    """The blind index to search for an email or phone number as typed (normalised when valid)."""
    value = normalized_identity(term)
    # An invalid term hashes as typed: it matches nothing stored, which is the right answer.
    return identity_index(value if value is not None else term.strip().lower())


def identity_search_hash(email: str | None, phone_number: str | None) -> str:
    """The keyed hash to search for one identity, checked as ``create_request`` checks it (a clear 422
    for an invalid one, where the GET filter's ``identity_hash_for`` silently matches nothing)."""
    given = [value for value in (email, phone_number) if value and value.strip()]
    if len(given) != 1:
        message = "Search for one identity: an email address or a phone number."
        raise ValidationFailed(message, [(("identity",), message)])
    (value,) = normalize_identity(email, phone_number).values()
    return identity_index(value)


def classify_search(term: str) -> dict[str, str]:
    """Turn a search term into query parameters that never carry personal data.

    A request id that exists → ``{"q": term}``; an external id that exists (in any case) → ``{"external":
    keyed hash}`` (for ``list_requests(external_id_hash=...)``); an email or phone number → ``{"identity":
    keyed hash}`` (for ``list_requests(identity_hash=...)``); an empty term → ``{}``. Anything else could be
    personal data (a name), so it is refused rather than echoed into a URL. An email address is always
    searched by its hash, even when an external id equals it.
    """
    term = term.strip()
    if not term:
        return {}
    if "@" in term:
        return {"identity": identity_index(normalize_email(term))}  # an invalid address says why
    if db.session.scalar(select(PrivacyRequest.id).where(PrivacyRequest.id == term)) is not None:
        return {"q": term}
    if is_id_prefix(term):
        matches = db.session.scalars(
            select(PrivacyRequest.id).where(id_prefix_condition(term)).limit(2)
        ).all()
        if matches:
            return {"q": matches[0] if len(matches) == 1 else term}  # one: that request; more: all of them
    external = external_id_index(term)
    known = select(PrivacyRequest.id).where(PrivacyRequest.external_id_index == external).limit(1)
    if db.session.scalar(known) is not None:
        return {"external": external}
    if normalized_identity(term) is not None:
        return {"identity": identity_hash_for(term)}
    raise NotFound(
        "No request has that request id (or one starting with it) or external id, and it is not an email "
        "address or phone number."
    )


def url_search_params(term: str) -> dict[str, str]:
    """What a search term that came in a URL (``?q=``) may be used as: an existing request id stays
    ``q``; an existing external id becomes its keyed hash (``external``); anything else — an email
    address, a phone number, a name typed into the address bar — is nothing ({}), so a search by identity
    never works from (or invites) a URL."""
    try:
        found = classify_search(term)
    except (ValidationFailed, NotFound):
        return {}
    return {} if "identity" in found else found


ID_PREFIX = "pri_"
ID_PREFIX_MIN_LENGTH = len(ID_PREFIX) + 4  # "pri_1a2b": short enough to type, long enough to narrow


def is_id_prefix(term: str) -> bool:
    """Whether ``term`` can be the start of a request id (the queue shows ids shortened, "pri_11ec5be7…")."""
    return term.startswith(ID_PREFIX) and len(term) >= ID_PREFIX_MIN_LENGTH and term.isascii()


def id_prefix_condition(prefix: str):
    """Request ids starting with ``prefix`` (a LIKE with the prefix escaped: correct under any collation;
    a range on the key would depend on how the database orders "-" and digits)."""
    return PrivacyRequest.id.startswith(prefix, autoescape=True)


def search_condition(term: str):
    """A request id (or the start of one), an external id, an email or a phone number (matched through
    blind indexes)."""
    term = term.strip()
    conditions = [PrivacyRequest.id == term, PrivacyRequest.external_id_index == external_id_index(term)]
    if is_id_prefix(term):
        conditions.append(id_prefix_condition(term))
    if normalized_identity(term) is not None:
        column = PrivacyRequest.email_index if "@" in term else PrivacyRequest.phone_index
        conditions.append(column == identity_hash_for(term))
    return or_(*conditions)
