"""Error pages: HTML that matches the layout for browsers, ``{"detail": ...}`` JSON under /api/."""

import traceback

from flask import current_app, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from portal.crypto import DecryptionError
from portal.extensions import db
from portal.services import NotFound

MESSAGES = {
    400: "The request could not be understood.",
    403: "You don't have permission to open this page.",
    404: "This page does not exist, or was removed.",
    405: "This action is not allowed here.",
    413: "What you sent is too large (the limit is 1 MB).",
    429: "Too many attempts. Wait a minute, then try again.",
    500: "Something went wrong on our side. Nothing you entered was half-saved; please try again.",
}


def wants_json() -> bool:
    return request.path.startswith("/api/")


API_MESSAGES = {
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Request body too large: the limit is 1 MB.",
    500: "Internal Server Error: nothing was half-saved; try again.",
}


def upload_too_large(api: bool) -> str | None:
    """The 413 message of an upload route, whose limit is an entry's files (``portal.uploads``), not
    1 MB; None elsewhere."""
    limit = request.max_content_length
    if not limit or limit <= current_app.config["MAX_CONTENT_LENGTH"]:
        return None
    size = f"{limit // (1024 * 1024)} MB"
    if api:
        return f"Request body too large: the limit is {size}."
    return f"What you sent is too large: the files of one entry may total {size} at most."


def _render(code: int, message: str):
    if wants_json():
        return jsonify(detail=API_MESSAGES.get(code, message)), code
    return render_template("errors/error.html", code=code, message=message), code


UNDECRYPTABLE = (
    "Stored personal data of this item cannot be decrypted: it is corrupted, or was encrypted with a key "
    "that is not configured. Nothing was changed, and other requests are not affected. An admin should "
    "check PORTAL_ENCRYPTION_KEY and the database."
)


def _log_without_values(app, error: BaseException) -> None:
    """Where it failed, never what: exception messages (database drivers' above all) can echo personal
    data, so the log gets the exception types and the stack, not the messages."""
    chain, seen = [], error
    while seen is not None and len(chain) < 5:
        chain.append(type(seen).__name__)
        seen = seen.__cause__ or seen.__context__
    stack = "".join(traceback.format_tb(error.__traceback__))
    app.logger.error(
        "Unhandled %s on %s %s (message not logged)\n%s",
        " <- ".join(chain),
        request.method,
        request.path,
        stack,
    )


def register(app) -> None:
    @app.errorhandler(DecryptionError)
    def undecryptable(error):
        db.session.rollback()
        app.logger.error("Undecryptable value on %s %s: %s", request.method, request.path, error)
        if wants_json():
            return jsonify(detail=UNDECRYPTABLE), 500
        return render_template("errors/error.html", code=500, message=UNDECRYPTABLE), 500

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return _render(
            400,
            "The form expired or was sent from another site. Go back, reload the page and try again.",
        )

    @app.errorhandler(NotFound)
    def not_found(error: NotFound):
        """A service found no such object: the 404 page with the service's message (the API answers its
        own ``{"detail": ...}``)."""
        db.session.rollback()
        return _render(404, str(error))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if error.code == 500:
            return server_error(error)
        message = MESSAGES.get(error.code, error.description)
        if error.code == 413 and (upload_limit := upload_too_large(api=False)):
            return render_template("errors/error.html", code=413, message=upload_limit), 413
        if (
            error.code in (400, 403, 404)
            and error.description
            and error.description != type(error).description
        ):
            message = error.description  # a specific message given with abort(...)
        return _render(error.code or 500, message)

    @app.errorhandler(Exception)
    def server_error(error):
        db.session.rollback()
        if not isinstance(error, HTTPException):
            _log_without_values(app, error)
        return _render(500, MESSAGES[500])
