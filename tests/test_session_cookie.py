"""The session cookie (portal.session_cookie): signed as Flask signs it, its payload compact JSON."""

from __future__ import annotations

import base64
import json
import zlib

from flask import Flask, flash, get_flashed_messages, session

from portal.session_cookie import SessionInterface


def _payload(cookie: str) -> dict:
    compressed = cookie.startswith(".")
    data = cookie.removeprefix(".").split(".")[0]
    raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    return json.loads(zlib.decompress(raw) if compressed else raw)


def _app(secret: str, fallbacks: list[str] | None = None) -> Flask:
    app = Flask("cookie")
    app.secret_key = secret
    app.config["SECRET_KEY_FALLBACKS"] = fallbacks or []
    app.session_interface = SessionInterface()

    @app.post("/set")
    def set_():
        session["n"] = 3
        flash("Saved “CRM”: data entered.", "success")
        return "ok"

    @app.get("/read")
    def read():
        return {"n": session.get("n"), "messages": get_flashed_messages(with_categories=True)}

    return app


def test_the_payload_is_plain_json_and_reads_back_with_its_flashed_messages():
    app = _app("a" * 64)
    client = app.test_client()
    client.post("/set")
    cookie = client.get_cookie("session").value
    assert _payload(cookie) == {"n": 3, "_flashes": [["success", "Saved “CRM”: data entered."]]}
    assert client.get("/read").get_json() == {"n": 3, "messages": [["success", "Saved “CRM”: data entered."]]}


def test_a_tampered_cookie_is_an_empty_session():
    app = _app("a" * 64)
    client = app.test_client()
    client.post("/set")
    cookie = client.get_cookie("session").value
    forged = base64.urlsafe_b64encode(b'{"n":4}').rstrip(b"=").decode() + cookie[cookie.index(".", 1) :]
    client.set_cookie("session", forged)
    assert client.get("/read").get_json()["n"] is None


def test_cookies_signed_with_a_fallback_key_still_open():
    old = _app("old-" + "a" * 60).test_client()
    old.post("/set")
    client = _app("new-" + "b" * 60, fallbacks=["old-" + "a" * 60]).test_client()
    client.set_cookie("session", old.get_cookie("session").value)
    assert client.get("/read").get_json()["n"] == 3
    stranger = _app("new-" + "b" * 60).test_client()
    stranger.set_cookie("session", old.get_cookie("session").value)
    assert stranger.get("/read").get_json()["n"] is None


def test_the_portal_uses_it(app):
    assert isinstance(app.session_interface, SessionInterface)


def test_many_queued_messages_stay_under_the_browsers_cookie_limit():
    app = _app("a" * 64)
    client = app.test_client()
    for _ in range(60):
        client.post("/set")
    assert len(client.get_cookie("session").value) < 4000
    assert len(client.get("/read").get_json()["messages"]) == 60
