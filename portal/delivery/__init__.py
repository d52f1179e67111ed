"""The data subject's delivery page: ``/delivery/<token>``, no account (services/delivery.py has the rules).

Public by design (tests/test_route_guard.py lists its endpoints): only a valid link opens anything, and
only after the subject has entered the code mailed to the request's address. Every response is
``no-store`` and ``noindex``; every view is rate-limited per address.
"""

from flask import Blueprint

bp = Blueprint("delivery", __name__, url_prefix="/delivery")

from portal.delivery import views  # noqa: E402,F401
