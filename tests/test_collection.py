"""Datasets (S5): the fides format loads as is, and validation errors name the collection and field."""

from __future__ import annotations

import fideslang.models
import pytest
import sqlalchemy as sa

from portal.execution.connectors import fides
from portal.extensions import db
from portal.models import AuditEvent, DatasetConfig
from portal.services import Conflict, InvalidState, ValidationFailed, datasets
from tests.collection_helpers import ADMIN, LOYALTY_YAML, SHOP_YAML, add_database
from tests.factories import make_connection


def parse(text: str) -> list[fides.Dataset]:
    return [datasets.parse_dataset(d, i) for i, d in enumerate(datasets.parse_text(text))]


# --- the format ---------------------------------------------------------------------------------------


def test_a_fides_dataset_file_loads_as_is_and_round_trips():
    """fideslang reads it: fidesops_meta becomes fides_meta, keys fideslang does not know (here the
    fideslang 1.x data_qualifier and retention) are ignored, and fields are sorted by name, as in fides."""
    text = """
dataset:
  - fides_key: postgres_example
    name: Postgres Example Test Dataset
    description: Example of a Postgres dataset containing a variety of related tables.
    organization_fides_key: default_organization
    data_qualifier: aggregated.anonymized
    retention: 30 days
    collections:
      - name: customer
        fides_meta: {after: [postgres_example.address]}
        fields:
          - name: email
            data_categories: [user.contact.email]
            data_qualifier: aggregated.anonymized.unlinked_pseudonymized.pseudonymized.identified
            fidesops_meta: {identity: email, data_type: string}
          - name: tags
            fides_meta: {data_type: "string[]"}
          - name: profile
            fields:
              - name: nickname
                data_categories: [user.name]
"""
    [dataset] = parse(text)
    assert isinstance(dataset, fideslang.models.Dataset)
    stored = dataset.to_json()
    assert stored == {
        "fides_key": "postgres_example",
        "name": "Postgres Example Test Dataset",
        "description": "Example of a Postgres dataset containing a variety of related tables.",
        "organization_fides_key": "default_organization",
        "collections": [
            {
                "name": "customer",
                "fides_meta": {"after": ["postgres_example.address"]},
                "fields": [
                    {
                        "name": "email",
                        "data_categories": ["user.contact.email"],
                        "fides_meta": {"identity": "email", "data_type": "string"},
                    },
                    {"name": "profile", "fields": [{"name": "nickname", "data_categories": ["user.name"]}]},
                    {"name": "tags", "fides_meta": {"data_type": "string[]"}},
                ],
            }
        ],
    }
    assert fides.Dataset.model_validate(stored).to_json() == stored


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("fields", 1, "fides_meta", {"data_type": "varchar"}),
            "Dataset 'shop', collection 'orders', field 'customer_id', fides_meta, data_type: "
            "The data type varchar is not supported.",
        ),
        (
            (
                "fields",
                1,
                "fides_meta",
                {"references": [{"dataset": "shop", "field": "customer.id", "direction": "sideways"}]},
            ),
            "Dataset 'shop', collection 'orders', field 'customer_id', fides_meta, references, 0, direction: "
            "Input should be 'from' or 'to'",
        ),
        (
            ("fields", 1, "name", ""),
            "Dataset 'shop': collection 'orders', field '': a name must be 1 to 200 characters long.",
        ),
        (
            ("fields", 1, "name", "id"),
            "Dataset 'shop', collection 'orders', fields: Duplicate entries found: [id]",
        ),
    ],
)
def test_model_errors_name_the_dataset_collection_and_field(change, message):
    documents = datasets.parse_text(SHOP_YAML)
    _, index, key, value = change
    documents[0]["collections"][1]["fields"][index][key] = value
    with pytest.raises(ValidationFailed) as caught:
        datasets.parse_dataset(documents[0])
    assert str(caught.value) == message


def test_fides_key_and_shape_errors():
    with pytest.raises(ValidationFailed, match=r"Dataset 'a b', fides_key: FidesKeys must only contain"):
        datasets.parse_dataset({"fides_key": "a b", "collections": []})
    with pytest.raises(ValidationFailed, match=r"Dataset 'x', collections: Field required"):
        datasets.parse_dataset({"fides_key": "x"})
    with pytest.raises(ValidationFailed, match=r"Expected a fides dataset file"):
        datasets.parse_text("just: text")
    with pytest.raises(ValidationFailed, match=r"Dataset 'x': nested more than 40 levels deep"):
        deep: dict = {"name": "f"}
        for _ in range(50):
            deep = {"name": "f", "fields": [deep]}
        datasets.parse_dataset({"fides_key": "x", "collections": [{"name": "c", "fields": [deep]}]})


def test_the_portal_limits_on_top_of_fideslang():
    """Names are stored (fides_key is 200 characters at most) and become SQL table and column names."""
    long = "k" * 201
    with pytest.raises(ValidationFailed) as caught:
        datasets.parse_dataset({"fides_key": long, "collections": []})
    assert str(caught.value) == f"Dataset '{long}': the fides_key must be at most 200 characters long."
    nested = {"name": "profile", "fields": [{"name": "n" * 201}]}
    with pytest.raises(ValidationFailed) as caught:
        datasets.parse_dataset({"fides_key": "x", "collections": [{"name": "c", "fields": [nested]}]})
    assert str(caught.value) == (
        f"Dataset 'x': collection 'c', field 'profile', field '{'n' * 200}': a name must be 1 to 200 "
        "characters long."
    )
    with pytest.raises(ValidationFailed) as caught:
        datasets.parse_dataset(
            {"fides_key": "x", "fides_meta": {"namespace": {"schema": 3}}, "collections": []}
        )
    assert str(caught.value) == "Dataset 'x': fides_meta, namespace, schema: must be a string."
    dataset = datasets.parse_dataset(
        {
            "fides_key": "x",
            "fidesops_meta": {"namespace": {"schema": "shop"}},
            "collections": [{"name": "c", "fidesops_meta": {"skip_processing": True}, "fields": []}],
        }
    )
    assert dataset.schema_name == "shop" and dataset.collections[0].fides_meta.skip_processing is True


def test_yaml_syntax_errors_give_the_line():
    with pytest.raises(ValidationFailed) as caught:
        datasets.parse_text("dataset:\n  - fides_key: x\n    collections: [\n")
    assert str(caught.value).startswith("The dataset is not valid YAML (line 4, column 1):")


# --- the graph ----------------------------------------------------------------------------------------

BROKEN = [
    (
        "references: [{dataset: nope, field: customer.id, direction: from}]",
        "Dataset 'shop', collection 'orders', field 'customer_id': references 'nope.customer.id', but there "
        "is no dataset 'nope'.",
    ),
    (
        "references: [{dataset: shop, field: customers.id, direction: from}]",
        "Dataset 'shop', collection 'orders', field 'customer_id': references 'shop.customers.id', but "
        "dataset 'shop' has no collection 'customers'.",
    ),
    (
        "references: [{dataset: shop, field: customer.idx, direction: from}]",
        "Dataset 'shop', collection 'orders', field 'customer_id': references 'shop.customer.idx', but "
        "collection 'customer' has no field 'idx'.",
    ),
    (
        "references: [{dataset: shop, field: customer, direction: from}]",
        "Dataset 'shop', collection 'orders', field 'customer_id': the reference field 'customer' must have "
        "the form '<collection>.<field>'.",
    ),
    (
        "references: [{dataset: shop, field: customer.id, direction: to}]",
        "Dataset 'shop', collection 'orders': no path from an identity: no field is an identity and no "
        "reference leads into it. Add 'fides_meta: {identity: email}' to a field, or a reference with "
        "direction 'from'.",
    ),
]


def _shop_with(orders_meta: str) -> str:
    return SHOP_YAML.replace(
        "fides_meta:\n              references: [{dataset: shop, field: customer.id, direction: from}]",
        "fides_meta:\n              " + orders_meta,
    )


@pytest.mark.parametrize(("orders_meta", "message"), BROKEN)
def test_graph_errors_name_the_collection_and_field(app, orders_meta, message):
    conn = make_connection("Shop DB", connection_type="sqlite")
    with pytest.raises(ValidationFailed) as caught:
        datasets.save_dataset_text(conn, _shop_with(orders_meta), ADMIN)
    assert str(caught.value) == message
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(DatasetConfig)) == 0


def test_a_cycle_without_an_identity_entry_point_is_named():
    text = """
dataset:
  - fides_key: shop
    collections:
      - name: customer
        fields:
          - name: email
            fides_meta: {identity: email}
      - name: a
        fields:
          - name: id
          - name: b_id
            fides_meta: {references: [{dataset: shop, field: b.id, direction: from}]}
      - name: b
        fields:
          - name: id
          - name: a_id
            fides_meta: {references: [{dataset: shop, field: a.id, direction: from}]}
"""
    graph = fides.build_graph([("db", d) for d in parse(text)])
    assert [str(e) for e in fides.validate(graph, {"shop"})] == [
        "Dataset 'shop', collection 'a', field 'b_id': collections 'a', 'b' reference each other in a cycle "
        "without an identity entry point ('a.id' → 'b.a_id'; 'b.id' → 'a.b_id'). Mark a field in one of "
        "them as an identity, or reference it from a collection an identity reaches."
    ]


def test_a_dataset_without_any_identity_says_where_to_start():
    text = "dataset: [{fides_key: lonely, collections: [{name: t, fields: [{name: id}]}]}]"
    graph = fides.build_graph([("db", d) for d in parse(text)])
    assert [str(e) for e in fides.validate(graph, {"lonely"})] == [
        "Dataset 'lonely': no field is an identity, so a search has nowhere to start: mark the field "
        "holding the subject's email with 'fides_meta: {identity: email}' (or phone_number)."
    ]


def test_nested_identities_are_refused_for_sql():
    text = """
dataset:
  - fides_key: shop
    collections:
      - name: customer
        fields:
          - name: email
            fides_meta: {identity: email}
          - name: profile
            fields:
              - name: phone
                fides_meta: {identity: phone_number}
"""
    graph = fides.build_graph([("db", d) for d in parse(text)])
    assert [str(e) for e in fides.validate(graph, {"shop"})] == [
        "Dataset 'shop', collection 'customer', field 'profile.phone': identities and references on nested "
        "fields are not supported for SQL databases; put them on a top-level field (a column)."
    ]


# --- saving -------------------------------------------------------------------------------------------


def test_datasets_reference_datasets_saved_on_other_connections(app, tmp_path):
    shop = add_database("Shop DB", "sqlite", {"path": str(tmp_path / "a.db")}, SHOP_YAML)
    loyalty = add_database("Loyalty DB", "sqlite", {"path": str(tmp_path / "b.db")}, LOYALTY_YAML)
    keys = db.session.scalars(sa.select(DatasetConfig.fides_key).order_by(DatasetConfig.fides_key)).all()
    assert keys == ["shop", "shop_loyalty"]
    with pytest.raises(
        Conflict, match="Dataset 'shop' cannot be deleted: dataset 'shop_loyalty' references it"
    ):
        datasets.delete_dataset(shop, "shop", ADMIN)
    datasets.delete_dataset(loyalty, "shop_loyalty", ADMIN)
    datasets.delete_dataset(shop, "shop", ADMIN)
    db.session.commit()
    actions = db.session.scalars(
        sa.select(AuditEvent.action).where(AuditEvent.action.like("dataset.%"))
    ).all()
    assert sorted(actions) == ["dataset.deleted", "dataset.deleted", "dataset.saved", "dataset.saved"]


def test_saving_again_replaces_by_fides_key_and_keys_belong_to_one_connection(app, tmp_path):
    shop = add_database("Shop DB", "sqlite", {"path": str(tmp_path / "a.db")}, SHOP_YAML)
    datasets.save_dataset_text(shop, SHOP_YAML.replace("name: Shop", "name: Shop v2"), ADMIN)
    db.session.commit()
    [config] = db.session.scalars(sa.select(DatasetConfig)).all()
    assert config.dataset["name"] == "Shop v2"
    other = make_connection("Other DB", connection_type="postgres")
    with pytest.raises(Conflict, match="Dataset 'shop' is attached to connection 'shop_db'"):
        datasets.save_dataset_text(other, SHOP_YAML, ADMIN)


def test_only_database_connections_take_datasets(app):
    manual = make_connection("Zendesk")
    with pytest.raises(InvalidState, match="only database connections \\(postgres, mysql, sqlite\\)"):
        datasets.save_dataset_text(manual, SHOP_YAML, ADMIN)


def test_deleting_a_connection_deletes_its_datasets(app, tmp_path):
    from portal.services import connections

    shop = add_database("Shop DB", "sqlite", {"path": str(tmp_path / "a.db")}, SHOP_YAML)
    connections.delete_connection(shop, ADMIN)
    db.session.commit()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(DatasetConfig)) == 0


def test_a_sqlite_connection_cannot_read_the_portal_database(app, tmp_path, monkeypatch):
    from portal.services import db_connections

    own = tmp_path / "instance" / "portal.sqlite3"
    monkeypatch.setitem(app.config, "SQLALCHEMY_DATABASE_URI", f"sqlite:///{own}")
    conn = make_connection("Sneaky", connection_type="sqlite")
    with pytest.raises(ValidationFailed, match="That is the portal's own database file"):
        db_connections.save_secrets(
            conn, {"path": str(tmp_path / "instance" / ".." / "instance" / own.name)}, ADMIN
        )
