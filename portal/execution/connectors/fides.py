"""The fides dataset format (S5), parsed by fideslang, and the reference graph built from it.

Datasets are validated by fideslang's own models (``fideslang.models.Dataset``, ``DatasetCollection``,
``DatasetField``, ``FidesMeta``, ``FidesDatasetReference``, ``CollectionMeta``, ``DatasetMetadata``), so a
dataset file fides accepts loads here as is: ``fides_meta`` or its older name ``fidesops_meta`` (fideslang
renames it), ``identity``, ``primary_key``, ``data_type``, ``references`` with ``direction``, nested
``fields``, the fides-key pattern, unique names, the data-type list. As in fides, keys fideslang does not
know are ignored, and collections and fields are kept sorted by name. ``Dataset`` below is fideslang's model
plus the limits of this portal's storage and SQL connectors (names of 1–200 characters, a string schema)
and two helpers.

The graph: a node per collection, and an edge per direction in which values flow between two fields. A
reference on field ``F`` to ``R`` with direction ``from`` means "query this collection by ``F`` with values
of ``R``" (``R → F``); ``to`` means ``F → R``; no direction means both. An identity field is an entry point.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from fideslang import models as fideslang_models
from fideslang.models import (
    CollectionMeta,
    DatasetCollection,
    DatasetField,
    DatasetMetadata,
    FidesDatasetReference,
    FidesMeta,
)
from pydantic import model_validator

__all__ = [
    "CollectionMeta",
    "CollectionNode",
    "Dataset",
    "DatasetCollection",
    "DatasetField",
    "DatasetGraph",
    "DatasetMetadata",
    "Edge",
    "FidesDatasetReference",
    "FidesMeta",
    "FieldAddress",
    "GraphError",
    "build_graph",
    "validate",
]

MAX_NAME_LENGTH = 200  # DatasetConfig.fides_key is a String(200); table and column names stay short too
MAX_ERRORS_SHOWN = 20


def _name_problems(fields: list[DatasetField] | None, where: str) -> list[str]:
    problems = []
    for f in fields or ():
        if not 1 <= len(f.name) <= MAX_NAME_LENGTH:
            problems.append(
                f"{where}field '{f.name[:MAX_NAME_LENGTH]}': a name must be 1 to {MAX_NAME_LENGTH} characters long."
            )
        problems.extend(_name_problems(f.fields, f"{where}field '{f.name[:MAX_NAME_LENGTH]}', "))
    return problems


class Dataset(fideslang_models.Dataset):
    """fideslang's ``Dataset``, with the portal's limits and helpers."""

    @model_validator(mode="after")
    def _portal_limits(self) -> Dataset:
        problems = []
        if len(self.fides_key) > MAX_NAME_LENGTH:
            problems.append(f"the fides_key must be at most {MAX_NAME_LENGTH} characters long.")
        for collection in self.collections:
            name = collection.name[:MAX_NAME_LENGTH]
            if not 1 <= len(collection.name) <= MAX_NAME_LENGTH:
                problems.append(
                    f"collection '{name}': a name must be 1 to {MAX_NAME_LENGTH} characters long."
                )
            problems.extend(_name_problems(collection.fields, f"collection '{name}', "))
        namespace = self.fides_meta.namespace if self.fides_meta else None
        if namespace and namespace.get("schema") is not None and not isinstance(namespace["schema"], str):
            problems.append("fides_meta, namespace, schema: must be a string.")
        if problems:
            raise ValueError(" ".join(problems[:MAX_ERRORS_SHOWN]))
        return self

    def to_json(self) -> dict[str, Any]:
        """The normalised document that is stored and returned: the keys fideslang knows that the author
        gave (``fidesops_meta`` renamed ``fides_meta``), no nulls, in fideslang's order."""
        return self.model_dump(mode="json", exclude_none=True, exclude_unset=True, by_alias=True)

    @property
    def schema_name(self) -> str | None:
        namespace = self.fides_meta.namespace if self.fides_meta else None
        return (namespace or {}).get("schema")


# --- the graph ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldAddress:
    dataset: str
    collection: str
    field: str

    @property
    def node(self) -> tuple[str, str]:
        return self.dataset, self.collection

    def __str__(self) -> str:
        return f"{self.dataset}.{self.collection}.{self.field}"


@dataclass
class CollectionNode:
    connection_key: str
    dataset: str
    name: str
    schema: str | None
    fields: list[str]
    primary_keys: list[str]
    data_types: dict[str, str | None]
    identities: dict[str, str]  # field → identity name
    skip: bool = False

    @property
    def id(self) -> tuple[str, str]:
        return self.dataset, self.name

    @property
    def key(self) -> str:
        """The package key, ``"<fides_key>:<collection>"``."""
        return f"{self.dataset}:{self.name}"


@dataclass(frozen=True)
class Edge:
    """Values of ``source`` are used to look ``target``'s collection up by ``target``'s field."""

    source: FieldAddress
    target: FieldAddress


@dataclass(frozen=True)
class GraphError:
    dataset: str
    collection: str | None
    field: str | None
    problem: str

    def __str__(self) -> str:
        where = f"Dataset '{self.dataset}'"
        if self.collection is not None:
            where += f", collection '{self.collection}'"
        if self.field is not None:
            where += f", field '{self.field}'"
        return f"{where}: {self.problem}"


@dataclass
class DatasetGraph:
    nodes: dict[tuple[str, str], CollectionNode] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    errors: list[GraphError] = field(default_factory=list)

    def outgoing(self) -> dict[tuple[str, str], list[Edge]]:
        by_node: dict[tuple[str, str], list[Edge]] = defaultdict(list)
        for edge in self.edges:
            by_node[edge.source.node].append(edge)
        return by_node

    def reachable(self) -> set[tuple[str, str]]:
        """Collections a search can reach: identity entry points, then every edge breadth-first."""
        outgoing = self.outgoing()
        start = [node.id for node in self.nodes.values() if node.identities and not node.skip]
        seen = set(start)
        queue = deque(start)
        while queue:
            for edge in outgoing.get(queue.popleft(), ()):
                target = edge.target.node
                if target not in seen and not self.nodes[target].skip:
                    seen.add(target)
                    queue.append(target)
        return seen


def _nested_meta_errors(
    dataset: str, collection: str, fields: list[DatasetField], path: str
) -> list[GraphError]:
    errors = []
    for f in fields:
        name = f"{path}.{f.name}"
        meta = f.fides_meta
        if meta and (meta.identity or meta.references):
            errors.append(
                GraphError(
                    dataset,
                    collection,
                    name,
                    "identities and references on nested fields are not supported for SQL databases; put "
                    "them on a top-level field (a column).",
                )
            )
        errors.extend(_nested_meta_errors(dataset, collection, f.fields or [], name))
    return errors


def build_graph(entries: list[tuple[str, Dataset]]) -> DatasetGraph:
    """The graph of ``(connection_key, dataset)`` entries; ``errors`` lists every broken reference."""
    graph = DatasetGraph()
    for connection_key, dataset in entries:
        for collection in dataset.collections:
            node = CollectionNode(
                connection_key=connection_key,
                dataset=dataset.fides_key,
                name=collection.name,
                schema=dataset.schema_name,
                fields=[f.name for f in collection.fields],
                primary_keys=[f.name for f in collection.fields if f.fides_meta and f.fides_meta.primary_key],
                data_types={
                    f.name: f.fides_meta.data_type if f.fides_meta else None for f in collection.fields
                },
                identities={
                    f.name: f.fides_meta.identity
                    for f in collection.fields
                    if f.fides_meta and f.fides_meta.identity
                },
                skip=bool(collection.fides_meta and collection.fides_meta.skip_processing),
            )
            graph.nodes[node.id] = node
    for _, dataset in entries:
        for collection in dataset.collections:
            for f in collection.fields:
                graph.errors.extend(
                    _nested_meta_errors(dataset.fides_key, collection.name, f.fields or [], f.name)
                )
                here = FieldAddress(dataset.fides_key, collection.name, f.name)
                for ref in (f.fides_meta.references or []) if f.fides_meta else []:
                    target = _resolve(graph, here, ref)
                    if target is None:
                        continue
                    if ref.direction in (None, "from"):
                        graph.edges.append(Edge(target, here))
                    if ref.direction in (None, "to"):
                        graph.edges.append(Edge(here, target))
    return graph


def _resolve(graph: DatasetGraph, here: FieldAddress, ref: FidesDatasetReference) -> FieldAddress | None:
    def fail(problem: str) -> None:
        graph.errors.append(GraphError(here.dataset, here.collection, here.field, problem))

    collection, dot, field_name = ref.field.partition(".")
    if not dot or not collection or not field_name:
        fail(f"the reference field '{ref.field}' must have the form '<collection>.<field>'.")
        return None
    target_text = f"'{ref.dataset}.{ref.field}'"
    if not any(dataset == ref.dataset for dataset, _ in graph.nodes):
        fail(f"references {target_text}, but there is no dataset '{ref.dataset}'.")
        return None
    node = graph.nodes.get((ref.dataset, collection))
    if node is None:
        fail(f"references {target_text}, but dataset '{ref.dataset}' has no collection '{collection}'.")
        return None
    if field_name not in node.fields:
        if "." in field_name and field_name.split(".", 1)[0] in node.fields:
            fail(f"references the nested field {target_text}; SQL databases can only follow columns.")
        else:
            fail(f"references {target_text}, but collection '{collection}' has no field '{field_name}'.")
        return None
    return FieldAddress(ref.dataset, collection, field_name)


def _cycles(graph: DatasetGraph, among: set[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Strongly connected groups of ``among`` that are cycles (Tarjan's algorithm, iteratively)."""
    successors: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
    for edge in graph.edges:
        if edge.source.node in among and edge.target.node in among:
            successors[edge.source.node].add(edge.target.node)
    index: dict = {}
    low: dict = {}
    on_stack: set = set()
    stack: list = []
    groups: list[list[tuple[str, str]]] = []
    counter = 0
    for root in sorted(among):
        if root in index:
            continue
        work = [(root, iter(sorted(successors[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(successors[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1 or node in successors[node]:
                    groups.append(sorted(group))
    return groups


def validate(graph: DatasetGraph, datasets: set[str]) -> list[GraphError]:
    """Broken references, then collections no identity can reach (cycles named as such), in ``datasets``."""
    errors = [e for e in graph.errors if e.dataset in datasets]
    checked = [n for n in graph.nodes.values() if n.dataset in datasets and not n.skip]
    if not checked:
        return errors
    if not any(node.identities for node in graph.nodes.values() if not node.skip):
        for key in sorted(datasets):
            errors.append(
                GraphError(
                    key,
                    None,
                    None,
                    "no field is an identity, so a search has nowhere to start: mark the field holding the "
                    "subject's email with 'fides_meta: {identity: email}' (or phone_number).",
                )
            )
        return errors
    reachable = graph.reachable()
    broken = {(e.dataset, e.collection) for e in graph.errors}  # already reported: the cause, not the effect
    unreachable = {
        node.id
        for node in graph.nodes.values()
        if node.id not in reachable and not node.skip and node.id not in broken
    }
    in_cycle: set[tuple[str, str]] = set()
    for group in _cycles(graph, unreachable):
        if not any(dataset in datasets for dataset, _ in group):
            continue
        in_cycle.update(group)
        links = sorted(
            {
                f"'{e.source.collection}.{e.source.field}' → '{e.target.collection}.{e.target.field}'"
                for e in graph.edges
                if e.source.node in group and e.target.node in group
            }
        )
        first = group[0]
        names = ", ".join(f"'{c}'" if d == first[0] else f"'{d}.{c}'" for d, c in group)
        target_fields = sorted(
            {e.target.field for e in graph.edges if e.target.node == first and e.source.node in group}
        )
        errors.append(
            GraphError(
                first[0],
                first[1],
                target_fields[0] if target_fields else None,
                f"collections {names} reference each other in a cycle without an identity entry point "
                f"({'; '.join(links)}). Mark a field in one of them as an identity, or reference it from a "
                "collection an identity reaches.",
            )
        )
    for node in checked:
        if node.id in reachable or node.id in in_cycle or node.id in broken:
            continue
        incoming = sorted({e.target.field for e in graph.edges if e.target.node == node.id})
        if incoming:
            problem = (
                f"no path from an identity: its field{'s' if len(incoming) > 1 else ''} "
                f"{', '.join(repr(f) for f in incoming)} take{'' if len(incoming) > 1 else 's'} values only "
                "from collections that no identity reaches."
            )
        else:
            problem = (
                "no path from an identity: no field is an identity and no reference leads into it. Add "
                "'fides_meta: {identity: email}' to a field, or a reference with direction 'from'."
            )
        errors.append(GraphError(node.dataset, node.name, incoming[0] if incoming else None, problem))
    return errors
