"""Attachments (the ``file`` field type): storing checked files, and reading them back.

Files are read in pieces of ``ATTACHMENT_CHUNK_BYTES`` (1 MiB), hashed and checked (``file_checks``) and
stored encrypted piece by piece as they arrive: memory never holds more than about one piece, whatever the
file's size. Reading goes the same way, one piece at a time on a short connection of its own.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

import sqlalchemy as sa

from portal.crypto import keyring, require_decrypted
from portal.extensions import db, run
from portal.models import Attachment, AttachmentChunk, utcnow
from portal.models.attachments import ATTACHMENT_CHUNK_BYTES
from portal.models.audit import Actor, record
from portal.services import NotFound, ValidationFailed
from portal.services.file_checks import (  # noqa: F401 - the rest of the feature's interface
    TYPES,
    FileCheck,
    Limits,
    Refused,
    accept_attribute,
    allowed_types,
    clean_name,
    limits,
    refuse,
    request_body_limit,
)

ID_PATTERN = re.compile(r"^att_[0-9a-f]{32}$")


@dataclass(frozen=True)
class Upload:
    """A file as a door hands it in: its name as the client gave it, and a stream to ``read(n)`` from."""

    file_name: str
    stream: BinaryIO


def _new_id() -> str:
    return f"att_{secrets.token_hex(16)}"


_INSERT_CHUNK = sa.insert(AttachmentChunk.__table__).values(
    attachment_id=sa.bindparam("attachment_id"),
    seq=sa.bindparam("seq"),
    data=sa.bindparam("data", type_=sa.LargeBinary),  # encrypted here, piece by piece
)


def _read_piece(stream: BinaryIO) -> bytes:
    """Up to one chunk's worth: a stream may hand out less per read than asked for."""
    piece = bytearray()
    while len(piece) < ATTACHMENT_CHUNK_BYTES:
        data = stream.read(ATTACHMENT_CHUNK_BYTES - len(piece))
        if not data:
            break
        piece += data
    return bytes(piece)


def store(
    request_id: str, connection_id: int, label: str, upload: Upload, allowed: Limits, budget: int
) -> dict[str, Any]:
    """Check and store one file (in the caller's transaction); its reference, as an entry holds it.

    ``budget``: the bytes the entry still has room for. Raises ``Refused`` naming the file; chunks already
    inserted are undone with the caller's transaction.
    """
    file_name = clean_name(upload.file_name)
    if not file_name:
        raise refuse(label, "(no name)", "a file needs a name.")
    check = FileCheck(label, file_name, allowed, budget)
    attachment_id = _new_id()
    ring = keyring()
    db.session.add(
        Attachment(
            id=attachment_id,
            privacy_request_id=request_id,
            connection_config_id=connection_id,
            meta={},
            created_at=utcnow(),
        )
    )
    db.session.flush()
    seq = 0
    while piece := _read_piece(upload.stream):
        check.take(piece, first=seq == 0)
        run(_INSERT_CHUNK, {"attachment_id": attachment_id, "seq": seq, "data": ring.encrypt(piece)})
        seq += 1
    check.finish()
    reference = {
        "id": attachment_id,
        "file_name": file_name,
        "type": TYPES[check.kind][0],
        "size": check.size,
        "sha256": check.hash.hexdigest(),
    }
    db.session.get(Attachment, attachment_id).meta = reference
    return reference


def stored_references(values: Any) -> dict[str, dict[str, Any]]:
    """Every file an entry's values refer to, by id (whatever the fields were when it was saved)."""
    found: dict[str, dict[str, Any]] = {}
    if not isinstance(values, dict):
        return found
    for value in values.values():
        for reference in value if isinstance(value, list) else ():
            if isinstance(reference, dict) and ID_PATTERN.match(str(reference.get("id", ""))):
                found[reference["id"]] = reference
    return found


def resolve(
    request_id: str,
    connection_id: int,
    fields: Iterable[dict[str, Any]],
    stored_values: Any,
    cleaned: dict[str, Any],
    uploads: Mapping[str, list[Upload]],
) -> list[str]:
    """Turn each file field of an entry being saved (``cleaned``: the ids of stored files to keep) into the
    references the entry stores, after storing its new files (checked, encrypted, in this transaction);
    returns the ids kept. ``stored_values``: the entry as saved before. A refused file raises, naming it:
    the caller's rollback undoes the others."""
    file_labels = [f["dsr_package_label"] for f in fields if f.get("type") == "file"]
    if not file_labels:
        return []
    stored = stored_references(stored_values)
    allowed = limits()
    errors = []
    kept: dict[str, list[dict[str, Any]]] = {}
    for label in file_labels:
        kept[label] = []
        for attachment_id in cleaned[label] or []:
            if attachment_id in stored:
                kept[label].append(stored[attachment_id])
            else:
                errors.append(((label,), f"{label}: this entry has no file with the id {attachment_id!r}"))
    if errors:
        raise ValidationFailed("; ".join(message for _, message in errors), errors)
    count = sum(len(refs) for refs in kept.values()) + sum(len(files) for files in uploads.values())
    if count > allowed.files:
        message = f"An entry holds at most {allowed.files} files; this one would hold {count}."
        raise ValidationFailed(message, [((), message)])
    budget = allowed.entry_bytes - sum(ref["size"] for refs in kept.values() for ref in refs)
    for label in file_labels:
        refs = list(kept[label])
        for upload in uploads.get(label, ()):
            reference = store(request_id, connection_id, label, upload, allowed, budget)
            budget -= reference["size"]
            refs.append(reference)
        cleaned[label] = refs or None
    return [ref["id"] for refs in kept.values() for ref in refs]


_DROP_ALL = sa.delete(Attachment.__table__).where(
    Attachment.__table__.c.privacy_request_id == sa.bindparam("request_id"),
    Attachment.__table__.c.connection_config_id == sa.bindparam("connection_id"),
)
_DROP_OTHERS = _DROP_ALL.where(Attachment.__table__.c.id.not_in(sa.bindparam("keep", expanding=True)))


def drop_unreferenced(request_id: str, connection_id: int, keep: Iterable[str]) -> int:
    """Delete the files of (request, connection) that the entry no longer refers to; how many."""
    keep = list(keep)
    params = {"request_id": request_id, "connection_id": connection_id}
    if keep:
        return run(_DROP_OTHERS, {**params, "keep": keep}).rowcount
    return run(_DROP_ALL, params).rowcount


def missing(request_id: str, connection_id: int, ids: Iterable[str]) -> list[str]:
    """The ``ids`` that are not (any more) files of (request, connection)."""
    ids = list(ids)
    if not ids:
        return []
    present = set(
        db.session.scalars(
            sa.select(Attachment.id).where(
                Attachment.id.in_(ids),
                Attachment.privacy_request_id == request_id,
                Attachment.connection_config_id == connection_id,
            )
        )
    )
    return [i for i in ids if i not in present]


# --- reading -------------------------------------------------------------------------------------------


class AttachmentChanged(RuntimeError):
    """The file was deleted (a save replaced it, or a purge) while it was being read."""


def chunks_of(attachment_id: str) -> list[int]:
    """The file's chunk ids in order, read in the caller's transaction (none: it is not stored)."""
    return list(
        db.session.scalars(
            sa.select(AttachmentChunk.id)
            .where(AttachmentChunk.attachment_id == attachment_id)
            .order_by(AttachmentChunk.seq)
        )
    )


def readers(files: Iterable[dict[str, Any]]) -> list[Iterator[bytes]]:
    """A stream of each file's bytes, for a package's ``attachments``; ``NotFound`` now, before anything
    is sent, when one is no longer stored (an entry saved again after the package was built)."""
    streams = []
    for item in files:
        chunk_ids = chunks_of(item["id"])
        if not chunk_ids:
            raise NotFound(
                "A file of this package is no longer stored: its entry was saved again since the package "
                "was built. The request's next run builds a package with the current files."
            )
        streams.append(iter_bytes(chunk_ids))
    return streams


def packaged_file(package: Any, attachment_id: str) -> dict[str, Any]:
    """The file ``attachment_id`` of an opened package (its summary lists it), or NotFound."""
    for item in package.attachments:
        if item["id"] == attachment_id:
            return item
    raise NotFound("This package has no such file.")


def download_saved(
    request_id: str, connection_id: int, connection_key: str, attachment_id: str, actor: Actor
) -> tuple[dict, Iterator[bytes]]:
    """A file saved on the entry of (request, connection), for staff checking what they uploaded; audited
    like a package's file (the caller commits before the first byte). NotFound for any other file."""
    meta = db.session.scalar(
        sa.select(Attachment.meta).where(
            Attachment.id == attachment_id,
            Attachment.privacy_request_id == request_id,
            Attachment.connection_config_id == connection_id,
        )
    )
    if meta is None:
        raise NotFound("This entry has no such file.")
    item = {**require_decrypted(meta), "key": connection_key, "label": None}
    return item, _audited(request_id, item, actor)


def _audited(request_id: str, item: dict[str, Any], actor: Actor) -> Iterator[bytes]:
    (stream,) = readers([item])
    record(
        actor,
        "attachment.downloaded",
        privacy_request_id=request_id,
        connection_key=item["key"],
        attachment_id=item["id"],
        **({"label": item["label"]} if item.get("label") else {}),
        size=item["size"],
    )
    return stream


def download(request_id: str, package: Any, attachment_id: str, actor: Actor) -> tuple[dict, Iterator[bytes]]:
    """One file of a package, audited (``attachment.downloaded``; the caller commits before the first
    byte): what the package says of it, and its bytes as a stream."""
    item = packaged_file(package, attachment_id)
    return item, _audited(request_id, item, actor)


def iter_bytes(chunk_ids: list[int]) -> Iterator[bytes]:
    """The file's bytes piece by piece, each read on a short connection of its own (a slow download holds
    no connection or transaction between pieces, and memory holds one piece)."""
    ring = keyring()
    table = AttachmentChunk.__table__
    # The stored bytes, decrypted here: a piece that cannot be decrypted stops the stream with an error.
    raw = sa.select(sa.type_coerce(table.c.data, sa.LargeBinary)).where(
        table.c.id == sa.bindparam("chunk_id")
    )
    for chunk_id in chunk_ids:
        with db.engine.connect() as conn:
            stored = conn.execute(raw, {"chunk_id": chunk_id}).scalar()
        if stored is None:
            raise AttachmentChanged("the file was removed while it was being read")
        yield ring.decrypt(bytes(stored))
