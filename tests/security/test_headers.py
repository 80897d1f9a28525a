"""Security headers on every page, a Content-Security-Policy our own pages live within (in
chromium too), HTTPS settings, and settings that refuse a bad value by naming it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.stormui import browser as chromium
from tests.stormui.conftest import HEALTHY, TROUBLED

ROOT = Path(__file__).resolve().parents[2]

EXPECTED_CSP = {
    "default-src": {"'self'"},
    "script-src": {"'self'"},
    "style-src": {"'self'"},
    "img-src": {"'self'", "data:"},
    "connect-src": {"'self'"},
    "frame-ancestors": {"'none'"},
    "base-uri": {"'self'"},
    "form-action": {"'self'"},
    "object-src": {"'none'"},
}

PAGES = [
    "/",
    f"/storms/{HEALTHY}/",
    f"/storms/{HEALTHY}/components/words/",
    f"/storms/{HEALTHY}/tasks/1/",
    f"/storms/{TROUBLED}/",
    "/supervisors/",
    "/supervisors/sup-a/",
    "/errors/",
    "/accounts/login/",
]
STAFF_PAGES = [f"/storms/{HEALTHY}/deactivate/", f"/storms/{HEALTHY}/remove/", "/audit/"]
API = ["/api/v1/cluster/summary", f"/api/v1/topology/{HEALTHY}", "/api/errors", "/api/nothing"]


def parse_csp(header: str) -> dict[str, set[str]]:
    policy = {}
    for directive in filter(None, (d.strip() for d in header.split(";"))):
        name, *values = directive.split()
        assert name not in policy, f"{name} twice"
        policy[name] = set(values)
    return policy


def assert_security_headers(response, url):
    headers = response.headers
    assert headers.get("X-Content-Type-Options") == "nosniff", url
    assert headers.get("Referrer-Policy") == "same-origin", url
    assert headers.get("X-Frame-Options") == "DENY", url
    assert headers.get("Cross-Origin-Opener-Policy") == "same-origin", url
    assert parse_csp(headers.get("Content-Security-Policy", "")) == EXPECTED_CSP, url


@pytest.fixture
def staff_client(db):
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-boss-1")
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_every_page_and_answer_carries_the_security_headers(known_cluster, staff_client):
    anonymous = Client()
    for url in PAGES + API:
        response = anonymous.get(url)
        assert response.status_code in (200, 404), (url, response.status_code)
        assert_security_headers(response, url)
    for url in ("/storms/nope/", "/api/v1/topology/nope"):  # refusals too
        response = anonymous.get(url)
        assert response.status_code == 404
        assert_security_headers(response, url)
    response = anonymous.post(f"/api/v1/topology/{HEALTHY}/remove")
    assert response.status_code == 401
    assert_security_headers(response, "remove")
    for url in STAFF_PAGES + PAGES:
        response = staff_client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        assert_security_headers(response, url)
    # our pages need nothing inline: no script or style element, no style or on* attribute
    for url in PAGES + STAFF_PAGES:
        body = staff_client.get(url).content.decode()
        assert "<style" not in body and " style=" not in body, url
        for chunk in body.split("<script")[1:]:
            assert chunk.lstrip().startswith('src="/static/'), (url, chunk[:80])
        assert " onclick=" not in body and " onload=" not in body, url


# -- settings, in a fresh process --------------------------------------------------------------

SETTING_VARS = (
    "STORMUI_ZK_SERVERS",
    "STORMUI_ZK_ROOT",
    "STORMUI_STORE",
    "STORMUI_MIRROR",
    "STORMUI_LOGIN_REQUIRED",
    "STORMUI_READ_ONLY",
    "DATABASE_URL",
    "REDIS_URL",
    "DJANGO_SECRET_KEY",
    "DJANGO_DEBUG",
    "DJANGO_ALLOWED_HOSTS",
    "STORMUI_HEARTBEAT_SECS",
    "STORMUI_HTTPS",
    "STORMUI_METRICS_ALLOW",
    "STORMUI_LOG_LEVEL",
    "STORMUI_LOG_FORMAT",
)


def clean_env(**overrides) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in SETTING_VARS and not k.startswith(("STORMUI_", "DJANGO_"))
    }
    env["DJANGO_SETTINGS_MODULE"] = "stormui.settings"
    env.update(overrides)
    return env


def settings_of(**env) -> dict:
    names = [
        "DEBUG",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "SECURE_PROXY_SSL_HEADER",
    ]
    code = (
        "import json; from django.conf import settings as s; "
        f"print(json.dumps({{n: getattr(s, n) for n in {names!r}}}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_https_turns_on_secure_cookies_hsts_and_the_redirect():
    plain = settings_of()
    assert plain["DEBUG"] is False
    assert not plain["SESSION_COOKIE_SECURE"] and not plain["CSRF_COOKIE_SECURE"]
    assert not plain["SECURE_SSL_REDIRECT"] and not plain["SECURE_HSTS_SECONDS"]
    https = settings_of(STORMUI_HTTPS="true")
    assert https["SESSION_COOKIE_SECURE"] is True and https["CSRF_COOKIE_SECURE"] is True
    assert https["SECURE_SSL_REDIRECT"] is True
    assert https["SECURE_HSTS_SECONDS"] >= 31536000
    assert https["DEBUG"] is False
    assert settings_of(DJANGO_DEBUG="true")["DEBUG"] is True
    assert settings_of(DJANGO_DEBUG="false")["DEBUG"] is False


BAD_VALUES = {
    "STORMUI_ZK_SERVERS": "zookeeper-without-port",
    "STORMUI_ZK_ROOT": "storm",
    "STORMUI_STORE": "redis",
    "STORMUI_MIRROR": "maybe",
    "STORMUI_LOGIN_REQUIRED": "maybe",
    "STORMUI_READ_ONLY": "maybe",
    "DATABASE_URL": "nonsense://x",
    "REDIS_URL": "localhost:6379",
    "DJANGO_DEBUG": "yes please",
    "DJANGO_ALLOWED_HOSTS": "https://storm.example.com/",
    "STORMUI_HEARTBEAT_SECS": "inf",
    "STORMUI_HTTPS": "on",
    "STORMUI_METRICS_ALLOW": "127.0.0.0/8,10.0.0.1/8",
    "STORMUI_LOG_LEVEL": "verbose",
    "STORMUI_LOG_FORMAT": "logfmt",
}


def test_a_bad_value_stops_start_up_naming_its_variable(tmp_path):
    # any DJANGO_SECRET_KEY is a key: it has no bad value to refuse
    assert set(BAD_VALUES) == set(SETTING_VARS) - {"DJANGO_SECRET_KEY"}
    runs = {
        name: subprocess.Popen(
            [sys.executable, "manage.py", "check"],
            cwd=ROOT,
            env=clean_env(**{name: value}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, value in BAD_VALUES.items()
    }
    for name, proc in runs.items():
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode != 0, name
        last = stderr.strip().splitlines()[-1]
        assert "ImproperlyConfigured" in last and name in last, (name, last)
    good = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=clean_env(REDIS_URL="redis://127.0.0.1:6379/0", STORMUI_HEARTBEAT_SECS="0.5"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert good.returncode == 0, good.stderr


@pytest.mark.django_db
def test_logging_in_works_over_plain_http_with_debug_off(settings, known_cluster):
    assert settings.DEBUG is False and settings.STORMUI_HTTPS is False
    get_user_model().objects.create_user("ops", password="pw-ops-12345")
    client = Client(enforce_csrf_checks=True)
    form = client.get("/accounts/login/")
    assert form.status_code == 200
    token = form.cookies["csrftoken"].value
    assert not form.cookies["csrftoken"]["secure"]
    response = client.post(
        "/accounts/login/",
        {"username": "ops", "password": "pw-ops-12345", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302 and response["Location"] == "/"
    session = response.cookies["sessionid"]
    assert not session["secure"] and session["httponly"]
    page = client.get("/")
    assert page.status_code == 200 and b'<span class="user">ops</span>' in page.content


# -- the policy in a real browser ---------------------------------------------------------------

browser = chromium.browser
page = chromium.page

CSP_LISTENER = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', e => {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_no_page_of_ours_breaks_the_policy(page, live_server, known_cluster):
    page.add_init_script(CSP_LISTENER)
    console = []
    page.on(
        "console",
        lambda msg: console.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    for url in PAGES:
        response = page.goto(live_server.url + url)
        assert response.status == 200, url
        assert response.headers["content-security-policy"]
        page.wait_for_load_state("load")
        # the page's own script ran: a blocked script would leave the table unsortable
        assert page.evaluate("window.__csp") == [], url
    assert console == []
    assert page.watch.errors == []
    # and the listener does hear a violation: an image from another origin is refused
    page.evaluate(
        "document.body.insertAdjacentHTML('beforeend', '<img src=\"http://127.0.0.2:9/x.png\">')"
    )
    page.wait_for_function("window.__csp.length > 0")
    assert page.evaluate("window.__csp")[0].startswith("img-src")
