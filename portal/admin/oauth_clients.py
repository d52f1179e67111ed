"""Admin: OAuth clients — list them (created through the API or `flask create-client`) and delete them."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for

from portal.admin import bp
from portal.extensions import db
from portal.services import oauth_clients
from portal.web import current_actor


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
    client = oauth_clients.get_client(client_id)  # NotFound: the 404 page
    oauth_clients.delete_client(client, current_actor())
    db.session.commit()
    flash(f"Client {client_id} deleted: its access tokens stop working at once.", "success")
    return redirect(url_for("admin.oauth_clients"))
