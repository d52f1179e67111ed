"""Source databases for the collection tests: a small shop on SQLite, PostgreSQL or MySQL/MariaDB.

The tables are made with SQLAlchemy and the rows inserted with bound parameters, so the same data (with
its quotes and SQL fragments) lands in every backend. PostgreSQL gets a fresh schema per test and MySQL a
fresh database; both are dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models.audit import Actor
from portal.services import datasets, db_connections
from tests.conftest import PG_URL, REQUIRE_ALL, _postgres_unavailable_reason
from tests.factories import make_connection

ADMIN = Actor("user", "admin@example.com")
MYSQL_URL = os.environ.get("PORTAL_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
NASTY = "'; DROP TABLE customer; --"

metadata = sa.MetaData()
customer = sa.Table(
    "customer",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("email", sa.String(200)),
    sa.Column("phone", sa.String(40)),
    sa.Column("name", sa.String(200)),
)
orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("customer_id", sa.Integer),
    sa.Column("item", sa.String(200)),
)
loyalty = sa.Table(
    "loyalty",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("customer_id", sa.Integer),
    sa.Column("points", sa.Integer),
)
ROWS = {
    customer: [
        {"id": 1, "email": "jane@example.com", "phone": "+15550001111", "name": "Jane"},
        {"id": 2, "email": "JIM@Example.com", "phone": "+15550002222", "name": "Jim"},
        {"id": 3, "email": "x'or'1'='1@example.com", "phone": None, "name": "Tricky"},
        {"id": 4, "email": "other@example.com", "phone": "+15550004444", "name": NASTY},
    ],
    orders: [
        {"id": 10, "customer_id": 1, "item": "Book"},
        {"id": 11, "customer_id": 1, "item": "Lamp"},
        {"id": 12, "customer_id": 2, "item": "Chair"},
        {"id": 13, "customer_id": 4, "item": "Desk"},
    ],
    loyalty: [
        {"id": 100, "customer_id": 1, "points": 50},
        {"id": 101, "customer_id": 4, "points": 10},
    ],
}

SHOP_YAML = """
dataset:
  - fides_key: shop
    name: Shop
    collections:
      - name: customer
        fields:
          - name: id
            data_categories: [user.unique_id]
            fides_meta: {primary_key: true, data_type: integer}
          - name: email
            data_categories: [user.contact.email]
            fides_meta: {identity: email, data_type: string}
          - name: phone
            fidesops_meta: {identity: phone_number}
          - name: name
            data_categories: [user.name]
      - name: orders
        fields:
          - name: id
            fides_meta: {primary_key: true}
          - name: customer_id
            fides_meta:
              references: [{dataset: shop, field: customer.id, direction: from}]
          - name: item
"""
LOYALTY_YAML = """
dataset:
  - fides_key: shop_loyalty
    collections:
      - name: loyalty
        fields:
          - name: id
            fides_meta: {primary_key: true}
          - name: customer_id
            fides_meta:
              references: [{dataset: shop, field: customer.id, direction: from}]
          - name: points
"""

JANE = {
    "shop:customer": [{"id": 1, "email": "jane@example.com", "phone": "+15550001111", "name": "Jane"}],
    "shop:orders": [
        {"id": 10, "customer_id": 1, "item": "Book"},
        {"id": 11, "customer_id": 1, "item": "Lamp"},
    ],
    "shop_loyalty:loyalty": [{"id": 100, "customer_id": 1, "points": 50}],
}


def fill(engine: sa.Engine, schema: str | None = None) -> None:
    with engine.begin() as conn:
        if schema:
            conn = conn.execution_options(schema_translate_map={None: schema})
        metadata.create_all(conn)
        for table, rows in ROWS.items():
            conn.execute(table.insert(), rows)


def _unreachable(url: str) -> str | None:
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "not available here"
        return f"{sa.make_url(url).get_backend_name()} not reachable: {type(exc).__name__}"
    return None


def _skip_or_fail(reason: str) -> None:
    if REQUIRE_ALL:
        pytest.fail(reason + " (PORTAL_TEST_REQUIRE_ALL=1 forbids skipping)")
    pytest.skip(reason)


@contextmanager
def sqlite_source(tmp_path):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "shop.sqlite3"
    engine = sa.create_engine(f"sqlite:///{path}")
    fill(engine)
    engine.dispose()
    yield {"path": str(path)}


@contextmanager
def postgres_source():
    reason = _postgres_unavailable_reason()
    if reason:
        _skip_or_fail(reason)
    schema = f"shop_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        fill(engine, schema)
        url = sa.make_url(PG_URL).set(drivername="postgresql")
        yield {"url": url.render_as_string(hide_password=False), "db_schema": schema}
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@contextmanager
def mysql_source():
    reason = _unreachable(MYSQL_URL)
    if reason:
        _skip_or_fail(reason)
    name = f"shop_{uuid.uuid4().hex[:10]}"
    server = sa.create_engine(MYSQL_URL)
    with server.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}`"))
    url = sa.make_url(MYSQL_URL).set(database=name)
    engine = sa.create_engine(url)
    try:
        fill(engine)
        engine.dispose()
        parts = {"host": url.host, "port": url.port or 3306, "username": url.username, "dbname": name}
        if url.password:
            parts["password"] = url.password
        yield parts
    finally:
        engine.dispose()
        with server.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        server.dispose()


@contextmanager
def source(kind: str, tmp_path):
    if kind == "sqlite":
        with sqlite_source(tmp_path) as secrets:
            yield secrets
    elif kind == "postgres":
        with postgres_source() as secrets:
            yield secrets
    else:
        with mysql_source() as secrets:
            yield secrets


def add_database(name: str, connection_type: str, secrets: dict, *yaml_texts: str, key: str | None = None):
    """A database connection with these secrets and datasets, saved through the services."""
    conn = make_connection(name, key=key, connection_type=connection_type)
    db_connections.save_secrets(conn, secrets, ADMIN)
    for text in yaml_texts:
        datasets.save_dataset_text(conn, text, ADMIN)
    db.session.commit()
    return conn
