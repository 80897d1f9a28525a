"""Settings for stormui, read from the environment (and a .env file), as the contract lists."""

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
    env_number,
    env_redis_url,
    env_str,
    env_zk_root,
    env_zk_servers,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

# real environment variables win over the .env file
load_dotenv(BASE_DIR / ".env", override=False)


def _secret_key() -> str:
    key = env_str("DJANGO_SECRET_KEY", "")
    if key:
        return key
    # a fresh checkout gets its own persistent random key rather than a shared default
    path = VAR_DIR / "secret-key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        VAR_DIR.mkdir(exist_ok=True)
        key = secrets.token_urlsafe(50)
        path.write_text(key)
        return key


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_hosts("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")

STORMUI_ZK_SERVERS = env_zk_servers("STORMUI_ZK_SERVERS", "127.0.0.1:2181")
STORMUI_ZK_ROOT = env_zk_root("STORMUI_ZK_ROOT", "/storm")
STORMUI_STORE = env_choice("STORMUI_STORE", "zookeeper", ("zookeeper", "memory"))
STORMUI_MIRROR = env_choice("STORMUI_MIRROR", "on", ("on", "off")) == "on"
STORMUI_LOGIN_REQUIRED = env_bool("STORMUI_LOGIN_REQUIRED", False)
STORMUI_READ_ONLY = env_bool("STORMUI_READ_ONLY", False)
STORMUI_HEARTBEAT_SECS = env_number("STORMUI_HEARTBEAT_SECS", 5.0, minimum=0.05)
STORMUI_HTTPS = env_bool("STORMUI_HTTPS", False)
# runs removals scheduled by kill/<wait-secs> in the serving process
STORMUI_SCHEDULER_THREAD = env_bool("STORMUI_SCHEDULER_THREAD", True)
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
]

ROOT_URLCONF = "stormui.urls"
ASGI_APPLICATION = "stormui.asgi.application"
WSGI_APPLICATION = "stormui.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

try:
    DATABASES = {
        "default": dj_database_url.parse(
            env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"), conn_max_age=60
        )
    }
except (ValueError, KeyError) as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None

_redis_url = env_redis_url("REDIS_URL")
if _redis_url:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [_redis_url]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

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
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
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

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "stormui": {"level": "INFO"},
        "clusterstate": {"level": "INFO"},
        "kazoo": {"level": "WARNING"},
    },
}
