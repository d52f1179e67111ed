"""Admin pages for database connections: create, connection details, test, datasets; the demo seed."""

from __future__ import annotations

import io
import re

import pytest
import sqlalchemy as sa
from flask import render_template

from portal.extensions import db
from portal.models import CollectionStep, ConnectionConfig, DatasetConfig, PrivacyRequest
from portal.services import datasets
from tests.collection_helpers import SHOP_YAML, add_database, sqlite_source


def text_of(response) -> str:
    return re.sub(r"\s+", " ", response.get_data(as_text=True))


@pytest.fixture
def shop(app, tmp_path):
    with sqlite_source(tmp_path) as secrets:
        yield add_database("Shop DB", "sqlite", secrets)


def test_only_admins_see_the_database_pages(client, login_as, shop):
    login_as("staff")
    assert client.get("/admin/connections/shop_db/database").status_code == 403
    login_as("admin")
    assert client.get("/admin/connections/shop_db/database").status_code == 200
    assert client.get("/admin/connections/nope/database").status_code == 404


def test_create_a_database_connection_then_enter_its_details(client, login_as, tmp_path):
    login_as("admin")
    r = client.post("/admin/databases/new", data={"name": "Billing DB", "connection_type": "postgres"})
    assert r.status_code == 302 and r.headers["Location"] == "/admin/connections/billing_db/database"
    page = text_of(client.get(r.headers["Location"]))
    assert "No connection details saved yet" in page and "Host" in page and "Database file" not in page

    details = {
        "host": "db.internal",
        "port": "5433",
        "dbname": "billing",
        "username": "app",
        "password": "pw-s3cret-42",
    }
    r = client.post("/admin/connections/billing_db/database/secrets", data=details)
    assert r.status_code == 302
    page = text_of(client.get("/admin/connections/billing_db/database"))
    assert 'Saved: <code class="text-break">postgresql://app:***@db.internal:5433/billing</code>' in page
    assert "pw-s3cret-42" not in page and 'value="db.internal"' in page

    # A blank password keeps the saved one (same host and user).
    client.post("/admin/connections/billing_db/database/secrets", data={**details, "password": ""})
    conn = db.session.scalars(sa.select(ConnectionConfig).where(ConnectionConfig.key == "billing_db")).one()
    db.session.refresh(conn)
    assert conn.secrets == {
        "host": "db.internal",
        "port": 5433,
        "dbname": "billing",
        "username": "app",
        "password": "pw-s3cret-42",
    }

    r = client.post("/admin/connections/billing_db/database/secrets", data={"port": "99999", "host": "x"})
    assert r.status_code == 422 and "The port must be a number from 1 to 65535." in text_of(r)


def test_test_connection_flashes_the_result_in_plain_words(client, login_as, shop, tmp_path):
    login_as("admin")
    r = client.post("/admin/connections/shop_db/database/test", follow_redirects=True)
    assert f"Test connection succeeded. Connected to {shop.secrets['path']}." in text_of(r)
    client.post("/admin/connections/shop_db/database/secrets", data={"path": str(tmp_path / "missing.db")})
    r = client.post("/admin/connections/shop_db/database/test", follow_redirects=True)
    assert "Test connection failed. Could not connect to" in text_of(r)
    assert "unable to open database file" in text_of(r)


def test_upload_a_dataset_file_then_edit_download_and_delete_it(client, login_as, shop):
    login_as("admin")
    r = client.post(
        "/admin/connections/shop_db/datasets",
        data={"file": (io.BytesIO(SHOP_YAML.encode()), "shop.yml"), "text": ""},
        content_type="multipart/form-data",
    )
    assert r.status_code == 302
    page = text_of(client.get("/admin/connections/shop_db/database"))
    assert "Saved dataset “shop”." in page and "customer" in page and "(4 fields)" in page
    edit = client.get("/admin/connections/shop_db/database?edit=shop").get_data(as_text=True)
    assert "fides_key: shop" in edit
    download = client.get("/admin/connections/shop_db/datasets/shop.yml")
    assert download.headers["Content-Disposition"] == 'attachment; filename="shop.yml"'
    assert datasets.parse_text(download.get_data(as_text=True))[0]["fides_key"] == "shop"
    r = client.post("/admin/connections/shop_db/datasets/shop/delete", follow_redirects=True)
    assert "Deleted dataset “shop”." in text_of(r)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(DatasetConfig)) == 0


def test_pasted_dataset_errors_name_the_collection_and_field(client, login_as, shop):
    login_as("admin")
    broken = SHOP_YAML.replace("field: customer.id", "field: customer.idx")
    r = client.post("/admin/connections/shop_db/datasets", data={"text": broken})
    assert r.status_code == 422
    assert (
        "Dataset &#39;shop&#39;, collection &#39;orders&#39;, field &#39;customer_id&#39;: references "
        "&#39;shop.customer.idx&#39;, but collection &#39;customer&#39; has no field &#39;idx&#39;."
    ) in text_of(r)
    r = client.post("/admin/connections/shop_db/datasets", data={"text": ""})
    assert r.status_code == 400 and "Choose a file or paste a dataset." in text_of(r)


def test_posts_need_the_csrf_token(client, login_as, app, tmp_path):
    app.config["WTF_CSRF_ENABLED"] = True
    with sqlite_source(tmp_path) as secrets:
        add_database("Shop DB", "sqlite", secrets)
    login_as("admin")
    assert client.post("/admin/connections/shop_db/database/test").status_code == 400
    page = client.get("/admin/connections/shop_db/database").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post("/admin/connections/shop_db/database/test", data={"csrf_token": token})
    assert r.status_code == 302


def test_the_request_page_partial_lists_steps(app):
    steps = [
        CollectionStep(
            run=2,
            connection_key="shop_db",
            connection_name="Shop DB",
            rows_found=3,
            row_counts={"shop:customer": 1, "shop:orders": 2},
            duration_ms=12,
            error=None,
        ),
        CollectionStep(
            run=1,
            connection_key="shop_db",
            connection_name="Shop DB",
            rows_found=0,
            row_counts={},
            duration_ms=5,
            error="unable to open database file",
        ),
    ]
    with app.test_request_context():
        html = re.sub(r"\s+", " ", render_template("requests/_collection_steps.html", collection_steps=steps))
        assert "Collection" in html and "<code>shop:orders</code>: 2" in html and "12 ms" in html
        assert "Failed" in html and "unable to open database file" in html
        assert render_template("requests/_collection_steps.html", collection_steps=[]).strip() == ""


def test_the_demo_seed_collects_from_its_database_after_the_manual_gate(runner, app):
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    # Sorted here: the external ids are encrypted, so the database cannot order by them.
    requests = sorted(db.session.scalars(sa.select(PrivacyRequest)), key=lambda pr: pr.external_id)
    complete, half, waiting = requests
    assert complete.status == "complete"
    assert complete.package.data["sqlite_example:customer"][0]["name"] == "Jane Customer"
    assert complete.package.data["manual_webhook_key"][0]["first_name"] == "Jane"
    [step] = datasets.collection_steps(complete.id)
    assert step.connection_key == "sqlite_example" and step.rows_found == 5 and step.error is None
    assert datasets.collection_steps(half.id) == datasets.collection_steps(waiting.id) == []
    conn = db.session.scalars(
        sa.select(ConnectionConfig).where(ConnectionConfig.key == "sqlite_example")
    ).one()
    assert conn.secrets["path"].startswith(app.instance_path)
