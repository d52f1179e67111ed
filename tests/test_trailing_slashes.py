"""Every /api/v1 route answers with and without a trailing slash, as fidesops (FastAPI) does: the same
view serves both forms directly, never a redirect that a client would have to follow with its body."""

from __future__ import annotations

import pytest

from portal.extensions import db
from portal.models import ConnectionConfig
from tests.hardening_helpers import api_body, build_world, params_for, route_methods, url_for_rule
from tests.test_access_matrix import API

V1 = "/api/v1"
# The access matrix calls the admin last, after staff resumed the request; here the admin comes first.
ADMIN_FIRST = {
    ("api.resume_privacy_request", "POST"): 200,
    ("api.cancel_privacy_request", "POST"): 200,  # not canceled by staff first
    ("api.claim_task", "POST"): 200,  # not claimed by staff first
    ("api.delete_note", "DELETE"): 204,  # not deleted by its author first
    ("api.approve_package", "POST"): 200,  # not approved by a reviewer first
}


def _api_routes(app):
    return [(rule, method) for rule, method in route_methods(app) if rule.rule.startswith(V1)]


def test_every_api_rule_answers_both_forms_alike_signed_out(app, client):
    world = build_world()
    routes = _api_routes(app)
    assert len(routes) >= 25  # the walk found the API

    wrong = []
    for rule, method in routes:
        url = url_for_rule(rule, params_for(world, rule.endpoint))
        bare = client.open(url, method=method)
        slashed = client.open(url + "/", method=method)
        if slashed.status_code != bare.status_code or slashed.status_code in (301, 302, 307, 308, 404):
            wrong.append(f"{method} {url}/ → {slashed.status_code}, without the slash {bare.status_code}")
        elif slashed.get_json() != bare.get_json():
            wrong.append(f"{method} {url}/ answers {slashed.get_json()}, without the slash {bare.get_json()}")

    assert wrong == []


@pytest.mark.parametrize(("endpoint", "method"), sorted(API))
def test_every_api_route_runs_its_view_with_a_trailing_slash(app, endpoint, method):
    """The status an admin's token gets on the slashed form is the access matrix's, body and all."""
    world = build_world()
    rule = next(r for r, m in route_methods(app) if r.endpoint == endpoint and m == method)
    url = url_for_rule(rule, params_for(world, endpoint)) + "/"
    body = api_body(world, endpoint)
    kwargs = {"json": body} if body is not None else {}

    response = app.test_client().open(url, method=method, headers=world.headers("admin"), **kwargs)

    expected = ADMIN_FIRST.get((endpoint, method), API[(endpoint, method)][-1])
    assert response.status_code == expected, f"{method} {url}"


def test_a_patch_body_sent_to_the_slashed_path_is_applied(app, client):
    world = build_world()
    connection = {"name": "Slashed", "key": "slashed", "connection_type": "manual_webhook", "access": "read"}

    response = client.patch(V1 + "/connection/", json=[connection], headers=world.headers("admin"))

    assert response.status_code == 200
    assert [c["key"] for c in response.get_json()["succeeded"]] == ["slashed"]
    assert db.session.query(ConnectionConfig).filter_by(key="slashed").one().name == "Slashed"


def test_a_query_string_after_the_slash_filters_as_without_it(app, client):
    world = build_world()
    headers = world.headers("admin")

    slashed = client.get(f"{V1}/privacy-request/?request_id={world.waiting_id}", headers=headers)
    bare = client.get(f"{V1}/privacy-request?request_id={world.waiting_id}", headers=headers)

    assert slashed.status_code == 200
    assert [item["id"] for item in slashed.get_json()["items"]] == [world.waiting_id]
    assert slashed.get_json() == bare.get_json()


def test_html_routes_keep_their_strict_slashes(client, login_as):
    login_as("admin")
    assert client.get("/admin/users/").status_code == 404
