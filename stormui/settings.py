"""Settings for stormui, read from the environment (and a .env file).

The variables are those ``docs/contract/dashboard.md`` ("Running it") and
``docs/contract/operations.md`` list.
"""

import logging
import os
import secrets
import warnings
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

from stormui.env import (
    env_bool,
    env_choice,
    env_hosts,
    env_log_url,
    env_networks,
    env_number,
    env_redis_url,
    env_str,
    env_zk_root,
    env_zk_servers,
    redis_hosts,
)

# pytest sets PYTEST_VERSION for the length of its run: a test run reads no .env and keeps
# its secret key in memory, so that neither the developer's set-up nor the checkout is involved
UNDER_TESTS = bool(os.environ.get("PYTEST_VERSION"))


def _dotenv() -> Path | None:
    """The .env file to read: ``STORMUI_DOTENV`` (``off``: none), else the working folder's."""
    raw = os.environ.get("STORMUI_DOTENV")
    if raw is None:
        return None if UNDER_TESTS else Path(".env")
    if raw.strip().lower() in ("", "off"):
        return None
    path = Path(raw)
    if not path.is_file():
        raise ImproperlyConfigured(f"STORMUI_DOTENV names no file: {raw!r}")
    return path


# real environment variables win over the .env file
_DOTENV = _dotenv()
if _DOTENV is not None:
    load_dotenv(_DOTENV, override=False)

# everything the server writes (secret key, default database, collected static files) goes
# here, in the working folder by default: never into the installed package
VAR_DIR = Path(env_str("STORMUI_VAR_DIR", "") or "var").resolve()
_PERSIST = not UNDER_TESTS or bool(os.environ.get("STORMUI_VAR_DIR"))
if _PERSIST:
    try:
        VAR_DIR.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImproperlyConfigured(
            f"STORMUI_VAR_DIR {str(VAR_DIR)!r} cannot be made: {exc}"
        ) from None


def _secret_key() -> str:
    key = env_str("DJANGO_SECRET_KEY", "")
    if key:
        return key
    if not _PERSIST:
        return secrets.token_urlsafe(50)
    # each installation gets its own persistent random key rather than a shared default
    path = VAR_DIR / "secret-key"
    if not path.exists():
        # made whole under another name, then linked: a process starting alongside reads
        # either no key or the whole of the one that wins
        scratch = VAR_DIR / f".secret-key.{os.getpid()}"
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(50))
        try:
            os.link(scratch, path)
        except FileExistsError:
            pass
        finally:
            scratch.unlink()
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_hosts("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")

STORMUI_ZK_SERVERS = env_zk_servers("STORMUI_ZK_SERVERS", "127.0.0.1:2181")
STORMUI_ZK_ROOT = env_zk_root("STORMUI_ZK_ROOT", "/storm")
# where the daphnes elect their leader (with REDIS_URL): outside Storm's root
STORMUI_ZK_DASHBOARD_ROOT = env_zk_root("STORMUI_ZK_DASHBOARD_ROOT", "/stormui")
if (STORMUI_ZK_DASHBOARD_ROOT + "/").startswith(STORMUI_ZK_ROOT + "/"):
    raise ImproperlyConfigured(
        f"STORMUI_ZK_DASHBOARD_ROOT must be outside STORMUI_ZK_ROOT ({STORMUI_ZK_ROOT}), "
        f"not {STORMUI_ZK_DASHBOARD_ROOT!r}"
    )
# the leader election's own ZooKeeper session timeout (seconds): how long a leader killed
# outright keeps leading in ZooKeeper's eyes, so the most of a failover (ZooKeeper may raise
# it to its minSessionTimeout)
STORMUI_LEADER_SESSION_SECS = env_number("STORMUI_LEADER_SESSION_SECS", 4.0, minimum=1.0)
STORMUI_STORE = env_choice("STORMUI_STORE", "zookeeper", ("zookeeper", "memory"))
STORMUI_MIRROR = env_choice("STORMUI_MIRROR", "on", ("on", "off")) == "on"
STORMUI_LOGIN_REQUIRED = env_bool("STORMUI_LOGIN_REQUIRED", False)
STORMUI_READ_ONLY = env_bool("STORMUI_READ_ONLY", False)
STORMUI_HEARTBEAT_SECS = env_number("STORMUI_HEARTBEAT_SECS", 5.0, minimum=0.05)
# how often the relay sends every page again and ticks every socket; a page that hears
# nothing for two ticks says it is stale
STORMUI_TICK_SECS = env_number("STORMUI_TICK_SECS", 5.0, minimum=0.1)
STORMUI_HTTPS = env_bool("STORMUI_HTTPS", False)
# runs removals scheduled by kill/<wait-secs> in the serving process
STORMUI_SCHEDULER_THREAD = env_bool("STORMUI_SCHEDULER_THREAD", True)
# keeps the active storms' bases for activate, in the relaying process
STORMUI_BASE_RECORDER = env_bool("STORMUI_BASE_RECORDER", True)
# a worker's log, e.g. http://{host}:8000/log?file=worker-{port}.log; unset: no log links
# keeps the history (stormui.history), in the relaying process; for how many days
STORMUI_HISTORY = env_bool("STORMUI_HISTORY", True)
STORMUI_HISTORY_DAYS = env_number("STORMUI_HISTORY_DAYS", 30, minimum=0.001)
# how many items the history's writer keeps while the database does not answer
STORMUI_HISTORY_BUFFER = int(env_number("STORMUI_HISTORY_BUFFER", 200_000, minimum=1))
STORMUI_LOGVIEWER_URL = env_log_url("STORMUI_LOGVIEWER_URL")
# who may scrape /metrics (by the address daphne gives: see stormui.health); empty: nobody
STORMUI_METRICS_ALLOW = env_networks("STORMUI_METRICS_ALLOW", "127.0.0.0/8,::1/128")
STORMUI_LOG_LEVEL = env_choice(
    "STORMUI_LOG_LEVEL", "INFO", ("debug", "info", "warning", "error", "critical")
).upper()
STORMUI_LOG_FORMAT = env_choice("STORMUI_LOG_FORMAT", "text", ("text", "json"))
# Storm's own defaults for deciding that a task or supervisor is gone
STORMUI_TASK_TIMEOUT_SECS = 30
STORMUI_SUPERVISOR_TIMEOUT_SECS = 60

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework.authtoken",
    "csp",
    "stormui",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # last, so first to see a view's exception: the database down answers 503, not 500
    "stormui.middleware.DatabaseUnreachableMiddleware",
]

ROOT_URLCONF = "stormui.urls"
ASGI_APPLICATION = "stormui.asgi.application"
WSGI_APPLICATION = "stormui.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# conn_max_age=0: under ASGI every request runs in a worker thread of its own, so a
# connection kept per thread would stay open for each thread that ever served one
try:
    DATABASES = {
        "default": dj_database_url.parse(
            env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"), conn_max_age=0
        )
    }
except (ValueError, KeyError) as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # several threads write (requests, the scheduler, the history's writer): in WAL mode
    # readers never wait for a writer, and a writer waits up to `timeout` seconds for another
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault(
        "init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"
    )
    DATABASES["default"]["OPTIONS"].setdefault("timeout", 20)

_redis_url = env_redis_url("REDIS_URL")
# with Redis, the processes that do not relay read the relaying one's mirror from it
# (stormui.source, clusterstate.replica): one ZooKeeper reader however many daphnes serve
REDIS_URL = _redis_url
if _redis_url:
    CHANNEL_LAYERS = {
        "default": {
            # channels_redis's, living through a Redis restart; a group's messages reach
            # this process's sockets through one subscription (stormui.redislayer)
            "BACKEND": "stormui.redislayer.FanOutRedisChannelLayer",
            # a redis:// URL, or Sentinels and the master's name (redis+sentinel://)
            "CONFIG": {"hosts": redis_hosts(_redis_url)},
        }
    }
else:
    # every socket is in this process: the fan-out layer hands each message to each one
    CHANNEL_LAYERS = {"default": {"BACKEND": "stormui.layers.FanOutChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
# the templates and static files are the stormui app's own (package data)
STATIC_ROOT = VAR_DIR / "static"
# serve straight from the finders so that `migrate` alone is enough to render pages
WHITENOISE_USE_FINDERS = True
if not STATIC_ROOT.is_dir():
    # without collectstatic the finders serve everything; the missing folder is expected
    warnings.filterwarnings("ignore", message="No directory at")
WHITENOISE_AUTOREFRESH = DEBUG

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# our pages load only their own scripts and styles: nothing inline, nothing from elsewhere
# (connect-src 'self' covers the same-origin ws: and wss: sockets in CSP3 browsers)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "object-src": ["'none'"],
    }
}
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if STORMUI_HTTPS:
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# one line per event, with its time, level and logger (STORMUI_LOG_FORMAT=json: one JSON
# object per line); kazoo's INFO is a line per connection state change, so it stays at WARNING
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "stormui.logformat.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": STORMUI_LOG_FORMAT},
    },
    "root": {"handlers": ["console"], "level": STORMUI_LOG_LEVEL},
    "loggers": {
        "kazoo": {"level": max(STORMUI_LOG_LEVEL, "WARNING", key=logging.getLevelName)},
    },
}
