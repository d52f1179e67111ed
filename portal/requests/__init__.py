"""Privacy requests in the browser: the staff queue, the request page, manual-input forms."""

from flask import Blueprint

from portal.security import guard_blueprint

bp = Blueprint("requests", __name__, url_prefix="/requests")
guard_blueprint(bp)  # every signed-in role may see requests; views narrow further with roles_required

from portal.requests import delivery, manual_input, views, workflow  # noqa: E402,F401
