"""Safe defaults only. Secrets come from ``instance/config.py`` or ``PORTAL_*`` environment variables.

Layers, later wins: this module → ``instance/config.py`` → ``PORTAL_<NAME>`` env vars → ``test_config``.
Inside ``instance/config.py`` and the environment the names are the same without the prefix, e.g.
``PORTAL_DATABASE_URL`` ↔ ``DATABASE_URL``.
"""


class ConfigurationError(RuntimeError):
    """The app cannot start with this configuration; the message says what to set."""


DEFAULT_SECRET_KEY = "dev-insecure-change-me"  # noqa: S105 - the value the guard refuses


class DefaultConfig:
    SECRET_KEY = DEFAULT_SECRET_KEY
    # None → SQLite file ``portal.sqlite3`` in the instance folder.
    DATABASE_URL: str | None = None
    # None → read from (or generated into) ``instance/encryption.key``. Comma-separated keys rotate:
    # the first encrypts, every one decrypts.
    ENCRYPTION_KEY: str | None = None
    # At start, check the key against the `encryption_canary` row and refuse to start when it cannot
    # decrypt it (portal/key_check.py). Turn off only to inspect a database whose key is lost.
    VERIFY_ENCRYPTION_KEY = True
    # Retention (`flask purge`): identities, manual inputs and packages of requests closed (complete,
    # denied, canceled) more than this many days ago are deleted; the request row and audit trail stay.
    RETENTION_DAYS = 90
    # Also purge (retention) on every sweep, so Celery beat or the `flask sweep` cron job does both.
    PURGE_ON_SWEEP = False
    REQUIRE_APPROVAL = False
    # Review and delivery (services/delivery.py): a reviewer approves each completed request's package
    # before it reaches the data subject (False: it is released as the request completes). The subject's
    # link works this many days; the code mailed to them this many minutes, and this many wrong codes lock
    # the link. The delivery pages answer at most DELIVERY_RATE_LIMIT per address.
    REQUIRE_PACKAGE_REVIEW = True
    DELIVERY_LINK_DAYS = 7
    DELIVERY_CODE_MINUTES = 15
    DELIVERY_CODE_ATTEMPTS = 5
    DELIVERY_SESSION_MINUTES = 30
    DELIVERY_RATE_LIMIT = "30 per minute"
    # A storage destination (its key) every released package is also written to; None: none.
    RELEASE_STORAGE_KEY: str | None = None
    # Local storage destinations write only inside this folder (None → ``<instance>/exports``); each
    # destination names an existing directory in it. Files there are outside the portal's retention.
    STORAGE_LOCAL_ROOT: str | None = None
    # "inline": runs happen in the web process (embedded default). "celery": runs are queued on Redis
    # (REDIS_URL, queue CELERY_QUEUE) for `celery -A portal.worker worker`.
    TASK_BACKEND = "inline"
    REDIS_URL = "redis://127.0.0.1:6379/0"
    CELERY_QUEUE = "portal"
    # The sweeper (`flask sweep`, or Celery beat every SWEEP_INTERVAL_SECONDS) requeues runs whose claim is
    # older than RUN_TIMEOUT_SECONDS (a killed worker), and runnable requests left unqueued for longer than
    # SWEEP_GRACE_SECONDS (the broker was down). Keep the timeout well above the longest run.
    RUN_TIMEOUT_SECONDS = 900
    SWEEP_GRACE_SECONDS = 120
    SWEEP_INTERVAL_SECONDS = 60

    # Notifications (portal/notifications). Without MAIL_SERVER, mails are written to the log by a clearly
    # marked console backend and never sent. With it, Flask-Mailman sends over SMTP: STARTTLS on 587 by
    # default (MAIL_USE_TLS; the server's certificate is verified), or implicit TLS (MAIL_USE_SSL, 465).
    MAIL_SERVER: str | None = None
    MAIL_PORT = 587
    MAIL_USE_TLS = True
    MAIL_USE_SSL = False
    MAIL_USERNAME: str | None = None
    MAIL_PASSWORD: str | None = None
    MAIL_DEFAULT_SENDER = "Manual Webhook Portal <portal@localhost>"
    MAIL_TIMEOUT = 10  # seconds per SMTP operation: a hung server cannot hold a sender for long
    # The portal's address as its users reach it: every link in a mail starts with it.
    BASE_URL = "http://127.0.0.1:5000"
    # Open requests due within this many days (or overdue) are listed in the daily digest.
    DUE_SOON_DAYS = 7
    # The daily digest goes out at the first sender run after this hour (UTC).
    DIGEST_HOUR = 7
    # A mail the server did not take is tried again after 1, 2, 4 ... minutes (at most an hour apart),
    # up to this many attempts; then it is marked failed and shown to admins.
    NOTIFICATION_MAX_ATTEMPTS = 10
    NOTIFICATION_RETRY_SECONDS = 60

    # Sessions: secure by default; ``make run`` on plain-http localhost turns Secure off in instance/.
    SESSION_COOKIE_SECURE = True
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_SECURE = True
    REMEMBER_COOKIE_HTTPONLY = True
    IDLE_TIMEOUT_MINUTES = 30
    # The idle timeout records activity once a minute (portal.auth); re-signing the cookie on every
    # request would only move its expiry by seconds.
    SESSION_REFRESH_EACH_REQUEST = False

    # OAuth clients (POST /api/v1/oauth/token): an access token's lifetime. Short, because a leaked bearer
    # token works until it expires; a client holds its own credentials and asks for a new one (fidesops:
    # 11520, 8 days).
    OAUTH_TOKEN_MINUTES = 60

    # Login throttling (Flask-Limiter): failed sign-ins per account and address, and per address over all
    # accounts. None → the portal's database ("database://", portal.rate_limits) with the inline backend,
    # REDIS_URL with celery, so every web process counts against the same limits. If that storage is down,
    # each process falls back to counting in memory rather than failing sign-ins.
    LOGIN_RATE_LIMIT = "5 per minute"
    LOGIN_IP_RATE_LIMIT = "30 per minute"
    RATELIMIT_STORAGE_URI: str | None = None
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_HEADERS_ENABLED = False

    # Argon2id parameters: OWASP's Password Storage profile m=19 MiB, t=2, p=1 (RFC 9106's 64 MiB profile
    # would add 45 MiB to each web worker's peak memory on every sign-in, for no gain OWASP recognises).
    # Stored hashes carry their own parameters and are re-hashed at the next sign-in after a change.
    # Tests lower them for speed.
    PASSWORD_HASH_TIME_COST = 2
    PASSWORD_HASH_MEMORY_COST = 19456
    PASSWORD_HASH_PARALLELISM = 1
    PASSWORD_MIN_LENGTH = 12

    WTF_CSRF_TIME_LIMIT = None  # tokens live as long as the session
    MAX_CONTENT_LENGTH = 1024 * 1024
    # One limit for every body (413, "the limit is 1 MB"): Werkzeug would otherwise refuse a single form
    # field over 500 kB, or a form with over 1,000 inputs (the field editor has up to 200 rows of 8).
    MAX_FORM_MEMORY_SIZE = 1024 * 1024
    MAX_FORM_PARTS = 2000
    # Attachments (file fields; portal.services.attachments): per file, per entry (None: 4 × per file),
    # files per entry, and the allowed types (names of attachments.TYPES, comma-separated). The upload
    # routes take bodies up to the per-entry limit plus 1 MB; every other route keeps MAX_CONTENT_LENGTH.
    MAX_ATTACHMENT_MB = 25
    MAX_ENTRY_ATTACHMENT_MB: int | None = None
    MAX_ATTACHMENTS_PER_ENTRY = 20
    ATTACHMENT_TYPES = "pdf,png,jpeg,gif,webp,csv,txt,zip,docx,xlsx,pptx,odt,ods,mp3,wav,m4a,ogg"
    PAGE_SIZE = 50
    # Access packages are built, stored and read in encrypted chunks of rows of at most this many bytes
    # (a single larger row gets a chunk of its own), so memory stays near this size for any package.
    PACKAGE_CHUNK_BYTES = 1024 * 1024
    # The package page shows this many rows of each system; the JSON and ZIP downloads hold every row.
    PACKAGE_PREVIEW_ROWS = 50
    BOOTSTRAP_SERVE_LOCAL = True
    BOOTSTRAP_BOOTSWATCH_THEME = None
    # hide_parameters: database errors are logged without the statement's values (emails, entered data).
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True, "hide_parameters": True}
