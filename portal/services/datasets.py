"""Datasets (S5): parse fides dataset YAML, validate it as a graph, attach it to a database connection.

Validation runs on save, against every dataset already saved, so an error can name what it is about: the
dataset, the collection and the field (an unknown reference target, a cycle without an identity entry
point, a collection no identity reaches). The HTML page and the JSON API both call these functions.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy import bindparam, func, select

from portal.execution.connectors import fides
from portal.extensions import db
from portal.models import CollectionStep, ConnectionConfig, DatasetConfig
from portal.models.audit import Actor, record
from portal.services import Conflict, NotFound, ValidationFailed
from portal.services.db_connections import require_database

MAX_DATASETS = 50
MAX_TEXT_LENGTH = 1024 * 1024
MAX_DEPTH = 40  # nesting of the document; nested fields deeper than this are not a real schema


def _depth(document: Any) -> int:
    deepest, stack = 0, [(document, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


# --- parsing ------------------------------------------------------------------------------------------


def parse_text(text: str) -> list[Any]:
    """The dataset documents in a YAML (or JSON) text: ``{dataset: [...]}``, a list, or one dataset."""
    if len(text) > MAX_TEXT_LENGTH:
        raise ValidationFailed("The dataset file is larger than 1 MB.", [(("dataset",), "larger than 1 MB")])
    if "\x00" in text:
        raise ValidationFailed(
            "The dataset file contains a null character.", [(("dataset",), "null character")]
        )
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "it cannot be read"
        message = f"The dataset is not valid YAML{where}: {problem}."
        raise ValidationFailed(message, [(("dataset",), message)]) from None
    except RecursionError:
        message = "The dataset is nested too deeply."
        raise ValidationFailed(message, [(("dataset",), message)]) from None
    except ValueError:  # PyYAML reads numbers and dates with Python's int() and date()
        message = (
            "The dataset holds a number or a date that cannot be read: a number of more than 4,300 digits, "
            "or a day that does not exist, such as 2024-02-30."
        )
        raise ValidationFailed(message, [(("dataset",), message)]) from None
    if isinstance(document, dict) and "dataset" in document:
        document = document["dataset"]
    elif isinstance(document, dict) and "fides_key" in document:
        document = [document]
    if not isinstance(document, list) or not document:
        message = "Expected a fides dataset file: 'dataset:' followed by a list of datasets."
        raise ValidationFailed(message, [(("dataset",), message)])
    return document


def _name_at(document: Any, loc: tuple) -> list[str]:
    """A pydantic location in words: ``('collections', 1, 'fields', 0, 'name')`` → collection 'x', field 'y'."""
    words: list[str] = []
    node = document
    i = 0
    while i < len(loc):
        part = loc[i]
        if part in ("collections", "fields") and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            index = loc[i + 1]
            items = node.get(part) if isinstance(node, dict) else None
            item = items[index] if isinstance(items, list) and index < len(items) else None
            name = item.get("name") if isinstance(item, dict) else None
            kind = "collection" if part == "collections" else "field"
            words.append(f"{kind} '{name}'" if isinstance(name, str) else f"{kind} #{index + 1}")
            node = item
            i += 2
            continue
        words.append(str(part))
        node = node.get(part) if isinstance(node, dict) else None
        i += 1
    return words


def _dataset_label(document: Any, index: int) -> str:
    key = document.get("fides_key") if isinstance(document, dict) else None
    return f"Dataset '{key}'" if isinstance(key, str) and key else f"Dataset #{index + 1}"


def parse_dataset(document: Any, index: int = 0) -> fides.Dataset:
    """One dataset through the fides models; errors name the dataset, collection and field."""
    if not isinstance(document, dict):
        message = f"Dataset #{index + 1}: expected a mapping with fides_key and collections."
        raise ValidationFailed(message, [((index,), message)])
    if _depth(document) > MAX_DEPTH:
        message = f"{_dataset_label(document, index)}: nested more than {MAX_DEPTH} levels deep."
        raise ValidationFailed(message, [((index,), message)])
    try:
        return fides.Dataset.model_validate(document)
    except ValidationError as exc:
        errors = []
        for error in exc.errors(include_url=False, include_context=False, include_input=False):
            loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            words = [_dataset_label(document, index), *_name_at(document, loc)]
            msg = error["msg"].removeprefix("Value error, ")
            errors.append(((index, *loc), f"{', '.join(words)}: {msg}"))
        raise ValidationFailed("; ".join(m for _, m in errors[:10]), errors) from None


# --- validation and saving ---------------------------------------------------------------------------


def _graph_errors(conn: ConnectionConfig, datasets: list[fides.Dataset]) -> list[fides.GraphError]:
    keys = {d.fides_key for d in datasets}
    saved = db.session.execute(
        select(DatasetConfig, ConnectionConfig.key)
        .join(ConnectionConfig, ConnectionConfig.id == DatasetConfig.connection_config_id)
        .where(DatasetConfig.fides_key.not_in(keys))
        .order_by(DatasetConfig.fides_key)
    ).all()
    entries = []
    for config, connection_key in saved:
        try:
            entries.append((connection_key, fides.Dataset.model_validate(config.dataset)))
        except ValidationError:
            continue  # a stored dataset that no longer loads is reported when it runs, not here
    entries.extend((conn.key, d) for d in datasets)
    return fides.validate(fides.build_graph(entries), keys)


def _check_owner(conn: ConnectionConfig, fides_key: str) -> DatasetConfig | None:
    existing = db.session.scalar(select(DatasetConfig).where(DatasetConfig.fides_key == fides_key))
    if existing is not None and existing.connection_config_id != conn.id:
        raise Conflict(
            f"Dataset '{fides_key}' is attached to connection '{existing.connection_config.key}'; a fides_key "
            "belongs to one connection only."
        )
    return existing


def _store(
    conn: ConnectionConfig, dataset: fides.Dataset, actor: Actor, *, meta_name: str | None = None
) -> DatasetConfig:
    config = _check_owner(conn, dataset.fides_key)
    created = config is None
    if created:
        config = DatasetConfig(connection_config_id=conn.id, fides_key=dataset.fides_key)
        db.session.add(config)
    config.dataset = dataset.to_json()
    config.meta_name = meta_name
    db.session.flush()
    record(
        actor,
        "dataset.saved",
        connection_key=conn.key,
        fides_key=dataset.fides_key,
        created=created,
        collections=sorted(c.name for c in dataset.collections),
    )
    return config


def save_datasets(conn: ConnectionConfig, datasets: list[fides.Dataset], actor: Actor) -> list[DatasetConfig]:
    """Create or replace (by fides_key) every dataset, or none: any error raises ``ValidationFailed``."""
    require_database(conn)
    if len(datasets) > MAX_DATASETS:
        message = f"At most {MAX_DATASETS} datasets can be saved at once."
        raise ValidationFailed(message, [(("dataset",), message)])
    keys = [d.fides_key for d in datasets]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        message = f"The same fides_key appears more than once: {', '.join(duplicates)}."
        raise ValidationFailed(message, [(("dataset",), message)])
    for key in keys:
        _check_owner(conn, key)
    errors = _graph_errors(conn, datasets)
    if errors:
        shown = errors[: fides.MAX_ERRORS_SHOWN]
        more = len(errors) - len(shown)
        message = " ".join(str(e) for e in shown) + (f" (and {more} more)" if more else "")
        raise ValidationFailed(message, [(_loc(keys, e), str(e)) for e in errors])
    return [_store(conn, dataset, actor) for dataset in datasets]


def _loc(keys: list[str], error: fides.GraphError) -> tuple:
    loc: tuple = (keys.index(error.dataset),) if error.dataset in keys else ()
    if error.collection is not None:
        loc += ("collections", error.collection)
    if error.field is not None:
        loc += ("fields", error.field)
    return loc


def save_dataset_text(conn: ConnectionConfig, text: str, actor: Actor) -> list[DatasetConfig]:
    """An uploaded or pasted dataset file: every dataset in it is saved, or none."""
    require_database(conn)
    documents = parse_text(text)
    datasets, errors = [], []
    for index, document in enumerate(documents):
        try:
            datasets.append(parse_dataset(document, index))
        except ValidationFailed as exc:
            errors.extend(exc.errors)
    if errors:
        raise ValidationFailed("; ".join(m for _, m in errors[:10]), errors)
    return save_datasets(conn, datasets, actor)


def bulk_upsert(
    conn: ConnectionConfig, documents: list[Any], actor: Actor
) -> tuple[list[DatasetConfig], list[dict[str, Any]]]:
    """The fidesops PATCH: each dataset succeeds or fails on its own; datasets in one body may reference
    each other. Returns ``(saved, [{"message", "data"}])``."""
    require_database(conn)
    failed: list[dict[str, Any]] = []
    candidates: list[tuple[fides.Dataset, Any]] = []
    for index, document in enumerate(documents):
        try:
            dataset = parse_dataset(document, index)
            _check_owner(conn, dataset.fides_key)
        except (ValidationFailed, Conflict) as exc:
            failed.append({"message": str(exc), "data": document if isinstance(document, dict) else {}})
            continue
        candidates = [(d, doc) for d, doc in candidates if d.fides_key != dataset.fides_key]  # last one wins
        candidates.append((dataset, document))
    while candidates:  # drop the datasets with graph errors until the rest validate together
        errors = _graph_errors(conn, [d for d, _ in candidates])
        if not errors:
            break
        broken = {e.dataset for e in errors}
        for dataset, document in candidates:
            if dataset.fides_key in broken:
                messages = [str(e) for e in errors if e.dataset == dataset.fides_key]
                failed.append({"message": " ".join(messages), "data": document})
        candidates = [(d, doc) for d, doc in candidates if d.fides_key not in broken]
    return [
        _store(conn, dataset, actor, meta_name=FIDESOPS_META if _names(document, FIDESOPS_META) else None)
        for dataset, document in candidates
    ], failed


FIDESOPS_META = "fidesops_meta"


def _names(document: Any, key: str) -> bool:
    """Whether a dataset document uses ``key`` on itself, a collection or a field (nested fields too)."""
    if not isinstance(document, dict):
        return False
    if key in document:
        return True
    children = [*(document.get("collections") or []), *(document.get("fields") or [])]
    return any(_names(child, key) for child in children if isinstance(child, list | dict))


def as_written(config: DatasetConfig) -> dict[str, Any]:
    """The stored dataset as the API answers it: a client that wrote ``fidesops_meta`` (fidesops' name)
    reads it back under that name too, beside fideslang's ``fides_meta``."""
    if config.meta_name != FIDESOPS_META:
        return config.dataset
    return _with_fidesops_meta(config.dataset)


def _with_fidesops_meta(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    copy = dict(node)
    for name in ("collections", "fields"):
        if isinstance(node.get(name), list):
            copy[name] = [_with_fidesops_meta(child) for child in node[name]]
    if "fides_meta" in node:
        copy[FIDESOPS_META] = node["fides_meta"]
    return copy


# --- reading and deleting ----------------------------------------------------------------------------


def list_datasets(conn: ConnectionConfig, page: int = 1, size: int = 50) -> tuple[list[DatasetConfig], int]:
    """One page, newest first (the fidesops order)."""
    query = select(DatasetConfig).where(DatasetConfig.connection_config_id == conn.id)
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    items = db.session.scalars(
        query.order_by(DatasetConfig.created_at.desc(), DatasetConfig.id.desc())
        .limit(size)
        .offset((page - 1) * size)
    ).all()
    return list(items), total


def get_dataset(conn: ConnectionConfig, fides_key: str) -> DatasetConfig:
    config = db.session.scalar(
        select(DatasetConfig).where(
            DatasetConfig.connection_config_id == conn.id, DatasetConfig.fides_key == fides_key
        )
    )
    if config is None:
        raise NotFound(f"No dataset with fides_key '{fides_key}' and connection key '{conn.key}'")
    return config


def delete_dataset(conn: ConnectionConfig, fides_key: str, actor: Actor) -> None:
    """Refused while another dataset references it: their searches would silently lose a path."""
    config = get_dataset(conn, fides_key)
    others = db.session.execute(
        select(DatasetConfig.fides_key, DatasetConfig.dataset).where(DatasetConfig.id != config.id)
    ).all()
    users = sorted({key for key, document in others if _references(document, fides_key)})
    if users:
        raise Conflict(
            f"Dataset '{fides_key}' cannot be deleted: dataset{'s' if len(users) > 1 else ''} "
            f"{', '.join(repr(u) for u in users)} reference{'' if len(users) > 1 else 's'} it. "
            "Remove those references first."
        )
    db.session.delete(config)
    db.session.flush()
    record(actor, "dataset.deleted", connection_key=conn.key, fides_key=fides_key)


def _references(document: dict[str, Any], fides_key: str) -> bool:
    def fields(items):
        for item in items or []:
            if isinstance(item, dict):
                yield item
                yield from fields(item.get("fields"))

    for collection in document.get("collections") or []:
        for field in fields(collection.get("fields")):
            meta = field.get("fides_meta") or {}
            if any(
                isinstance(r, dict) and r.get("dataset") == fides_key for r in meta.get("references") or []
            ):
                return True
    return False


def datasets_of(conn: ConnectionConfig) -> list[DatasetConfig]:
    return list(
        db.session.scalars(
            select(DatasetConfig)
            .where(DatasetConfig.connection_config_id == conn.id)
            .order_by(DatasetConfig.fides_key)
        )
    )


def to_yaml(config: DatasetConfig) -> str:
    """The stored dataset as a fides dataset file (for download and for editing in the paste box)."""
    return yaml.safe_dump({"dataset": [config.dataset]}, sort_keys=False, allow_unicode=True)


# --- collection steps (the request page) -------------------------------------------------------------


_STEPS = (
    select(CollectionStep)
    .where(CollectionStep.privacy_request_id == bindparam("request_id"))
    .order_by(CollectionStep.run.desc(), CollectionStep.connection_key)
)  # built once: every request page reads it


def collection_steps(privacy_request_id: str) -> list[CollectionStep]:
    """Every connection's step of every collection run of a request, newest run first."""
    return list(db.session.scalars(_STEPS, {"request_id": privacy_request_id}))
