"""Admin area (S3): users, connections, webhook fields, storage, tokens, audit. Admins only, every route."""

from flask import Blueprint

from portal.models import Role
from portal.security import guard_blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")
guard_blueprint(bp, Role.ADMIN)

from portal.admin import audit, connections, datasets, oauth_clients, policies, storage, tokens, users  # noqa: E402,F401
