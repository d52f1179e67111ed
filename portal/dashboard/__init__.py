"""The home page: what each role should look at first."""

from flask import Blueprint, render_template
from flask_login import current_user

from portal.security import guard_blueprint

bp = Blueprint("dashboard", __name__)
guard_blueprint(bp)


@bp.route("/")
def index():
    return render_template("dashboard/index.html", user=current_user)


@bp.route("/api-docs")
def api_docs():
    """The API reference, rendered from the OpenAPI document (no JavaScript, works offline)."""
    from portal.api.openapi import build_document

    return render_template("dashboard/api_docs.html", doc=build_document())
