"""gunicorn settings for serving the portal (``make serve``, README "Production").

``gunicorn --config gunicorn.conf.py app:app``; command-line options override these (``--workers 4``,
``--bind 0.0.0.0:8000``). Keep this file free of imports of the portal: it is read by the master process.
"""

wsgi_app = "app:app"
bind = "127.0.0.1:8000"
workers = 2

accesslog = "-"
errorlog = "-"
# The path without its query string, and no Referer (it holds the previous page's query string): a query
# string may carry personal data a client put there (``?identity=<email>``), and logs are kept and shipped
# far more widely than the database. Remote address, time, method, path, status, bytes, duration in ms.
access_log_format = '%(h)s - %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s"'

import re  # noqa: E402 - kept beside the one setting that needs it

from gunicorn.glogging import Logger  # noqa: E402

_DELIVERY_TOKEN = re.compile(r"(/delivery/)[A-Za-z0-9_-]+")


class PortalLogger(Logger):
    """The access log without a data subject's link: ``/delivery/<token>`` is logged as ``/delivery/…``."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["U"] = _DELIVERY_TOKEN.sub(r"\1…", atoms["U"])
        return atoms


logger_class = PortalLogger
