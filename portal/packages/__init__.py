"""Final access packages for reviewers (and admins): list, view, download as JSON or ZIP."""

from flask import Blueprint

from portal.models import Role
from portal.security import guard_blueprint

bp = Blueprint("packages", __name__, url_prefix="/packages")
guard_blueprint(bp, Role.ADMIN, Role.REVIEWER)

from portal.packages import views  # noqa: E402,F401
