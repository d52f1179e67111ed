"""Admin: OAuth clients — list them (created through the API or `flask create-client`) and delete them."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user

from portal.admin import bp
from portal.extensions import db
from portal.services import oauth_clients
from portal.services.audit import Actor


@bp.get("/tokens/clients", endpoint="oauth_clients")
def oauth_clients_index():
    clients = oauth_clients.list_clients()
    return render_template(
        "admin/tokens/clients.html",
        clients=clients,
        effective_scopes=oauth_clients.effective_scopes,
        token_minutes=oauth_clients.token_lifetime_seconds() // 60,
    )


@bp.post("/tokens/clients/<client_id>/delete")
def delete_oauth_client(client_id: str):
    client = oauth_clients.find_client(client_id)
    if client is None:
        abort(404)
    oauth_clients.delete_client(client, Actor.for_user(current_user))
    db.session.commit()
    flash(f"Client {client_id} deleted: its access tokens stop working at once.", "success")
    return redirect(url_for("admin.oauth_clients"))
