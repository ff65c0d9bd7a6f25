"""Settings of the regional health information platform, read from the environment.

Laptop defaults need nothing set: a SQLite file under ``data/``, Celery tasks
run in-process (eagerly), documents on the local filesystem. Production is
``PLATFORM_ENV=production``; it refuses to start without ``SECRET_KEY`` and
``ALLOWED_HOSTS``. See ``deploy/README.md`` for every variable.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from healthplatform.client_address import trusted_proxies_parse
from healthplatform.envconfig import Env

BASE_DIR = Path(__file__).resolve().parent.parent
env = Env()

PLATFORM_ENV = env.str("PLATFORM_ENV", "development")
if PLATFORM_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"PLATFORM_ENV: expected 'development' or 'production', got {PLATFORM_ENV!r}")
PRODUCTION = PLATFORM_ENV == "production"

DATA_DIR = env.path("PLATFORM_DATA_DIR", BASE_DIR / "data")

# --- Security -------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=not PRODUCTION)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG: must be off when PLATFORM_ENV=production")


def _development_secret_key() -> str:
    """A random key kept in the data folder, so sessions survive a restart on a laptop."""
    key_file = DATA_DIR / "dev-secret-key"
    if key_file.exists():
        return key_file.read_text(encoding="utf-8").strip()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    key_file.write_text(key, encoding="utf-8")
    key_file.chmod(0o600)
    return key


SECRET_KEY = env.str("SECRET_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
if PRODUCTION:
    if not SECRET_KEY or len(SECRET_KEY) < 32 or "change-me" in SECRET_KEY:
        raise ImproperlyConfigured(
            "SECRET_KEY: production needs a random secret of at least 32 characters (or SECRET_KEY_FILE), "
            "not the example's"
        )
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS: production needs the host names it serves, comma-separated")
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS")
    # HTTPS only, except the load balancer's health probe on the plain port.
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    # Short by default: HSTS cannot be taken back from browsers that saw it.
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=3600, minimum=0)
else:
    # Development mode (DEBUG pages show settings and data) is for this machine only.
    _LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1", "testserver"}
    if DEBUG and set(ALLOWED_HOSTS) - _LOCAL_HOSTS:
        raise ImproperlyConfigured(
            "ALLOWED_HOSTS: names other hosts while PLATFORM_ENV is development with DEBUG on; "
            "set PLATFORM_ENV=production to serve them"
        )
    SECRET_KEY = SECRET_KEY or _development_secret_key()
    ALLOWED_HOSTS = ALLOWED_HOSTS or ["localhost", "127.0.0.1", "[::1]", "testserver"]

# The load balancers and reverse proxies whose X-Forwarded-For is believed (addresses or CIDRs, comma-separated):
# healthplatform/client_address.py. Unset: the TCP peer is the client, whatever the header says.
TRUSTED_PROXIES = trusted_proxies_parse(env.list("TRUSTED_PROXIES"))

# --- Cache ----------------------------------------------------------------
# What every web process must share: the counts of failed authentications and the remembered credentials
# (healthplatform.fhirapi.throttle). Production needs Redis (counted per process, 4 workers would allow 4 times
# the failures); a laptop runs one process and keeps them in its memory.
CACHES = {"default": env.cache("CACHE_URL")}
if PRODUCTION and CACHES["default"]["BACKEND"] != "django.core.cache.backends.redis.RedisCache":
    raise ImproperlyConfigured("CACHE_URL: production shares its cache between processes: redis://host:6379/1")

# --- Applications ---------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from /static/ (no CDN on a hospital network)
    # OAuth2 token endpoint and bearer tokens of source systems (the FHIR API); see OAUTH2_PROVIDER below.
    "oauth2_provider",
    # Lockout of people's password logins per (username, address): healthplatform/login_throttle.py.
    "axes",
    # The stores (see DESIGN.md): services depend on them, never the reverse.
    "registry",
    "mpi",
    "ehr",
    "emr",
    # The platform package itself (health checks, Celery tasks) and the generator.
    "healthplatform",
    "healthplatform.ingest",
    "healthplatform.alerts",
    "healthplatform.audit",
    "healthplatform.viewer",
    "fixtures",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before routing: POST /fhir/[type]/_search becomes the GET search it is (healthplatform/fhirapi/search_post.py).
    "healthplatform.fhirapi.search_post.SearchByPostMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # The site's Content-Security-Policy on every response (healthplatform/content_security.py; issue 18).
    "healthplatform.content_security.ContentSecurityPolicyMiddleware",
    # Turns a locked-out login's page into a 429 (healthplatform.login_throttle.lockout_response).
    "axes.middleware.AxesMiddleware",
    # Last, so that it sees a view's exception first: a lost database connection is a 503, not a 500.
    "healthplatform.unavailable.DatabaseUnavailableMiddleware",
]

if PRODUCTION:
    # Static files (the admin's) served by the application itself, compressed
    # and cached forever under hashed names; runserver serves them in development.
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "healthplatform.urls"
WSGI_APPLICATION = "healthplatform.wsgi.application"
ASGI_APPLICATION = "healthplatform.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "healthplatform" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------
DATABASES = {"default": env.database("DATABASE_URL", default_sqlite=DATA_DIR / "platform.sqlite3")}
if PRODUCTION and DATABASES["default"]["ENGINE"] != "healthplatform.postgresql":
    raise ImproperlyConfigured("DATABASE_URL: production runs on PostgreSQL (postgresql://…)")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Internationalisation --------------------------------------------------
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

# --- Static files and documents -------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", DATA_DIR / "static")
DOCUMENT_STORAGE_DIR = env.path("DOCUMENT_STORAGE_DIR", DATA_DIR / "documents")
MEDIA_ROOT = DOCUMENT_STORAGE_DIR
STORAGES = {
    "default": {
        "BACKEND": "emr.storage.DurableFileSystemStorage",  # fsyncs each document before its row commits
        "OPTIONS": {"location": str(DOCUMENT_STORAGE_DIR)},
    },
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        ),
    },
}

# --- Celery -----------------------------------------------------------------
# Unset broker: tasks run in-process, at the moment they are queued. That keeps
# the laptop quickstart to one process; production sets a Redis or RabbitMQ URL.
CELERY_BROKER_URL = env.broker_url("CELERY_BROKER_URL")
if PRODUCTION and CELERY_BROKER_URL is None:
    raise ImproperlyConfigured("CELERY_BROKER_URL: production needs a broker (redis://… or amqp://…)")
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL is None
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND") or (
    CELERY_BROKER_URL if CELERY_BROKER_URL and CELERY_BROKER_URL.startswith("redis") else None
)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A task is acknowledged after it ran, so a worker that dies mid-task leaves it
# on the queue for another worker: tasks are written to run twice safely.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE

# --- REST framework and OpenAPI ---------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Regional health information platform",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "healthplatform.fhirapi.openapi.operation_outcomes",
    ],
}

# /api/schema/ and /api/docs/ for anyone (true), or only for the API's authenticated callers: source systems and
# staff sessions (healthplatform.fhirapi.openapi.SchemaReadable).
API_SCHEMA_PUBLIC = env.bool("API_SCHEMA_PUBLIC", default=not PRODUCTION)

# --- OAuth2 for source systems (FHIR API) -----------------------------------
# Client credentials grant (RFC 6749 §4.4) at /oauth/token, the registered source
# systems being the clients; scopes in the SMART Backend Services form
# ``system/<ResourceType|*>.<read|write|*>`` (SMART App Launch v1 scopes). The
# validator checks the secret the registry keeps; DOT only keeps the tokens.
FHIR_TOKEN_SECONDS = env.int("FHIR_TOKEN_SECONDS", 3600, minimum=60)
# Source systems' client authentication (healthplatform.fhirapi.throttle): failures from one address, or against
# one client id, before credentials not remembered are refused for the window; how long a credential that
# authenticated is remembered (accepted without the hasher, and whatever the failure counts); how often a
# refused registered client id still gets one real check.
AUTH_FAILURES_MAX = env.int("AUTH_FAILURES_MAX", 20, minimum=1)
AUTH_FAILURE_WINDOW_SECONDS = env.int("AUTH_FAILURE_WINDOW_SECONDS", 300, minimum=1)
AUTH_REMEMBER_SECONDS = env.int("AUTH_REMEMBER_SECONDS", 24 * 3600, minimum=60)
AUTH_BLOCKED_CHECK_SECONDS = env.int("AUTH_BLOCKED_CHECK_SECONDS", 1, minimum=1)
# The largest request body (a hospital's whole history of one person as one transaction Bundle is a few
# MB); larger ones get 413 with an OperationOutcome.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("FHIR_MAX_BODY_BYTES", 64 * 1024 * 1024, minimum=1024 * 1024)
# The largest single resource, as a request body or as a Bundle entry's resource (its compact JSON): a clinical
# resource is a few kB (a 60 MB Observation grew a worker by ~470 MB, never returned); Binary and
# DocumentReference carry documents inline (base64) and are bounded by the body limit alone.
FHIR_MAX_RESOURCE_BYTES = env.int("FHIR_MAX_RESOURCE_BYTES", 512 * 1024, minimum=1024)
FHIR_MAX_RESOURCE_BYTES_BY_TYPE = env.sizes(
    "FHIR_MAX_RESOURCE_BYTES_BY_TYPE",
    {"Binary": DATA_UPLOAD_MAX_MEMORY_SIZE, "DocumentReference": DATA_UPLOAD_MAX_MEMORY_SIZE},
)
# Bundles (healthplatform/ingest/apply.py). Measured on the 2-core bench machine through gunicorn (issue 18): a
# transaction writes ~3,500 Observations/s (20,000 in 5.6 s), a batch — each entry its own database transaction
# — 100 to 220 entries/s. The entry limits keep a Bundle at the limit well inside the time budget; the budget
# stops a batch that is slower still: the entries after it are answered "not processed" (503, timeout), a
# transaction past it is rolled back whole and answered 503. The budget must stay well below the web worker's
# timeout (gunicorn's ``timeout``: at least twice the budget), or the worker is killed before it answers.
FHIR_TRANSACTION_MAX_ENTRIES = env.int("FHIR_TRANSACTION_MAX_ENTRIES", 20_000, minimum=1)
FHIR_BATCH_MAX_ENTRIES = env.int("FHIR_BATCH_MAX_ENTRIES", 2_000, minimum=1)
FHIR_BUNDLE_TIME_BUDGET_SECONDS = env.float("FHIR_BUNDLE_TIME_BUDGET_SECONDS", 25.0)

# HL7 v2 intake (healthplatform/ingest/listener.py): the character set of a message whose MSH-18 is empty (most
# Chinese HIS leave it so; UTF-8 is what the region's new systems send, "GB18030" for a region of older ones).
HL7_DEFAULT_CHARSET = env.str("HL7_DEFAULT_CHARSET", "UTF-8")
# The largest HL7 v2 message taken (MLLP and HTTP): an MDM^T02 carries its document inline.
HL7_MAX_MESSAGE_BYTES = env.int("HL7_MAX_MESSAGE_BYTES", 16 * 1024 * 1024, minimum=1024)
# Days the inbox keeps a message whose outcome is final (processed, skipped, replayed, rejected) before
# ``manage.py inbox_prune`` deletes it; received and parked messages are kept whatever their age.
HL7_INBOX_RETENTION_DAYS = env.int("HL7_INBOX_RETENTION_DAYS", 90, minimum=1)
# Resource types a scope may name: what the platform serves or takes in (DESIGN.md).
FHIR_SCOPE_RESOURCE_TYPES = (
    "AllergyIntolerance",
    "Binary",
    "Condition",
    "DetectedIssue",
    "DiagnosticReport",
    "DocumentReference",
    "Encounter",
    "Immunization",
    "List",
    "Location",
    "MedicationDispense",
    "MedicationRequest",
    "MedicationStatement",
    "Observation",
    "Organization",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "ServiceRequest",
)
_SCOPE_ACTIONS = {"read": "read", "write": "create, update and delete", "*": "read and write"}
FHIR_SCOPES = {
    f"system/{resource_type}.{action}": f"{verb} {'every resource type' if resource_type == '*' else resource_type}"
    for resource_type in ("*", *FHIR_SCOPE_RESOURCE_TYPES)
    for action, verb in _SCOPE_ACTIONS.items()
}
OAUTH2_PROVIDER = {
    "OAUTH2_VALIDATOR_CLASS": "healthplatform.fhirapi.oauth.SourceSystemOAuth2Validator",
    # oauthlib's server of the client credentials grant alone: any other grant_type is unsupported_grant_type.
    "OAUTH2_SERVER_CLASS": "oauthlib.oauth2.BackendApplicationServer",
    # Parameters from form-encoded bodies only: DOT parsed any body (a FHIR one, a broken multipart) for them.
    "OAUTH2_BACKEND_CLASS": "healthplatform.fhirapi.oauth_core.FormBodyOAuthLibCore",
    "SCOPES": FHIR_SCOPES,
    # A client that asks for no scope gets read and write of everything (RFC 6749 §3.3 lets the server choose).
    "DEFAULT_SCOPES": ["system/*.read", "system/*.write"],
    "READ_SCOPE": "system/*.read",
    "WRITE_SCOPE": "system/*.write",
    "ACCESS_TOKEN_EXPIRE_SECONDS": FHIR_TOKEN_SECONDS,
    # RFC 9700 §4.14 and §2.3: only a digest of each token is stored (a database dump gives no usable
    # token), and a token is taken from the Authorization header only, never from a URL.
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    # The other RFC 9700 gates cover flows this server does not offer (implicit, password, PKCE,
    # redirects, refresh tokens); on, they keep `check --deploy` quiet and stay safe if one is added.
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
}

# --- Auth -------------------------------------------------------------------
# Password logins of people (viewer, admin): django-axes locks a (username, client address) pair out after
# LOGIN_FAILURES_MAX failures for LOGIN_LOCKOUT_SECONDS (healthplatform/login_throttle.py). Axes first: it
# refuses a locked-out pair before the password is hashed.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "healthplatform.login_throttle.PlatformModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURES_MAX", 5, minimum=1)
AXES_COOLOFF_TIME = dt.timedelta(seconds=env.int("LOGIN_LOCKOUT_SECONDS", 900, minimum=60))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "healthplatform.client_address.client_address"
AXES_LOCKOUT_CALLABLE = "healthplatform.login_throttle.lockout_response"
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
# A right password after a few typos starts the count again (the count is per username, so this helps no one
# guess another's password).
AXES_RESET_ON_SUCCESS = True
# Never in the attempts' rows or logs: the password (always cleansed), and the login page's "next" URL.
AXES_SENSITIVE_PARAMETERS = ["next", "csrfmiddlewaretoken"]
# A working day, then log in again; and the session cookie dies with the browser (a shared ward computer).
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", 10 * 3600, minimum=300)
SESSION_EXPIRE_AT_BROWSER_CLOSE = env.bool("SESSION_EXPIRE_AT_BROWSER_CLOSE", default=True)
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Messages ---------------------------------------------------------------
# In the session, not in a cookie: the admin shows a feed's new secret once as a message.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# --- Logging ----------------------------------------------------------------
# Patient data never goes to logs: loggers of ours log ids and counts only.
LOG_LEVEL = env.str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in logging.getLevelNamesMapping():
    raise ImproperlyConfigured(f"LOG_LEVEL: expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got {LOG_LEVEL!r}")
# Every handler passes healthplatform.log_redaction.PatientDataFilter: exception messages (a database error's
# DETAIL and CONTEXT quote the data), query strings and client-typed paths never reach a line. The development
# server's request lines (django.server) go through it too, instead of Django's own handler.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"no_patient_data": {"()": "healthplatform.log_redaction.PatientDataFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["no_patient_data"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

# --- The region -------------------------------------------------------------
# The administrative division (GB/T 2260) the platform serves; the generator
# and the registry's defaults use it.
REGION_DIVISION_CODE = env.str("REGION_DIVISION_CODE", "440106")

# --- The master patient index ------------------------------------------------
# Score bands of the matcher (mpi/matching.py): at or above auto_link (and
# corroborated) an identity is linked automatically; at or above review it
# goes to the review queue; below, it is a new person. After changing them,
# run `manage.py rematch`. MPI_MATCH_WEIGHTS may override any field level's
# (m, u) pair, e.g. {"phone": {"agree": (0.6, 1e-4)}}.
MPI_MATCH_THRESHOLDS = {
    "auto_link": env.float("MPI_AUTO_LINK_THRESHOLD", 18.0),
    "review": env.float("MPI_REVIEW_THRESHOLD", 7.0),
}
MPI_MATCH_WEIGHTS: dict = {}
# Assigning authorities whose name, sex, birth date and identity numbers win the golden record over any
# institution's (mpi/services/links.py, survivorship); contact details go to the most recent report anyway.
MPI_TRUSTED_AUTHORITIES = tuple(env.list("MPI_TRUSTED_AUTHORITIES") or ["REGION-POPULATION-REGISTER"])
# An exact name and birth date link without any contact field only if at most this many identities
# sound like the name (0: never). See mpi/matching.py RARE_NAME_MAX.
MPI_RARE_NAME_MAX = env.int("MPI_RARE_NAME_MAX", 30, minimum=0)
if MPI_MATCH_THRESHOLDS["review"] > MPI_MATCH_THRESHOLDS["auto_link"]:
    raise ImproperlyConfigured("MPI_REVIEW_THRESHOLD must not be above MPI_AUTO_LINK_THRESHOLD")
