"""The HTML pages, read as a person would: the figures in the cells, the words that mark trouble."""

from __future__ import annotations

import time
from html.parser import HTMLParser
from urllib.parse import quote

import pytest

from stormui import views
from stormui.source import get_source
from tests.stormui.conftest import (
    BROKEN,
    HEALTHY,
    HOSTILE_ERROR,
    MULTILINE_ERROR,
    PAUSED,
    TROUBLED,
    expected_window,
)

pytestmark = pytest.mark.django_db

# -- a small DOM, enough to find elements by id, class and data- attributes ------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


class Element:
    def __init__(self, tag, attrs, parent=None):
        self.tag = tag
        self.attrs = dict(attrs)
        self.parent = parent
        self.children: list = []  # Elements and strings

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    @property
    def words(self) -> str:
        """The text with runs of white space collapsed, as a browser lays it out outside <pre>."""
        return " ".join(self.text.split())

    @property
    def classes(self) -> set:
        return set((self.attrs.get("class") or "").split())

    def iter(self):
        for c in self.children:
            if isinstance(c, Element):
                yield c
                yield from c.iter()

    def find_all(self, tag=None, cls=None, **attrs):
        out = []
        for el in self.iter():
            if tag and el.tag != tag:
                continue
            if cls and cls not in el.classes:
                continue
            if any(el.attrs.get(k.replace("_", "-")) != v for k, v in attrs.items()):
                continue
            out.append(el)
        return out

    def find(self, tag=None, cls=None, **attrs):
        found = self.find_all(tag, cls, **attrs)
        return found[0] if found else None

    def by_id(self, id_):
        el = self.find(id=id_)
        assert el is not None, f"no element with id {id_!r}"
        return el

    def field(self, name) -> str:
        """The words of the cell marked ``data-field=name`` in this row."""
        cell = self.find(data_field=name)
        assert cell is not None, f"no {name!r} cell"
        return cell.words


class _Builder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = self.current = Element("#document", {})

    def handle_starttag(self, tag, attrs):
        el = Element(tag, attrs, self.current)
        self.current.children.append(el)
        if tag not in VOID:
            self.current = el

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Element(tag, attrs, self.current))

    def handle_endtag(self, tag):
        el = self.current
        while el is not None and el.tag != tag:
            el = el.parent
        if el is not None and el.parent is not None:
            self.current = el.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse(response) -> Element:
    builder = _Builder()
    builder.feed(response.content.decode("utf-8"))
    builder.close()
    return builder.root


def number(text: str) -> int:
    return int(text.split()[0].replace(",", ""))


def get_page(client, url, status=200):
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code)
    return parse(response)


def storm_row(doc, storm_id):
    row = doc.find("tr", data_storm_id=storm_id)
    assert row is not None, f"no row for {storm_id}"
    return row


def errors_10m(known, now):
    return sum(1 for tm, *_ in known.errors() if now - tm < 600)


# -- the cluster page --------------------------------------------------------------


@pytest.mark.parametrize("stormui_mirror", [True, False], ids=["mirror", "direct"])
def test_cluster_page_shows_the_cluster_figures(client, known_cluster):
    known = known_cluster
    doc = get_page(client, "/")
    now = time.time()
    assert number(doc.by_id("supervisors-count").text) == len(known.supervisors)
    assert number(doc.by_id("slots-total").text) == known.slots_total
    assert number(doc.by_id("slots-used").text) == known.slots_used
    assert number(doc.by_id("slots-free").text) == max(known.slots_total - known.slots_used, 0)
    assert number(doc.by_id("storms-count").text) == len(known.storms)
    assert number(doc.by_id("tasks-total").text) == len(known.tasks)
    assert number(doc.by_id("tasks-alive").text) == known.tasks_alive(now)
    assert number(doc.by_id("tasks-dead").text) == len(known.tasks) - known.tasks_alive(now)
    assert number(doc.by_id("errors-10m").text) == errors_10m(known, now)

    zk = doc.by_id("zk-status")
    assert zk.attrs["data-connected"] == "true"
    assert zk.words == "ZooKeeper connected"
    assert doc.by_id("data-status").words.startswith("Data as of ")
    assert doc.by_id("as-of").words.endswith(" UTC")


def test_cluster_page_lists_every_storm_with_its_figures(client, known_cluster):
    known = known_cluster
    doc = get_page(client, "/")
    now = time.time()
    rows = doc.by_id("storm-table").find("tbody").find_all("tr")
    assert {r.attrs["data-storm-id"] for r in rows} == set(known.storms)
    for storm_id, storm in known.storms.items():
        row = storm_row(doc, storm_id)
        tasks = known.storm_tasks(storm_id)
        alive = sum(t.alive(now) for t in tasks)
        name = storm["name"] if not storm["unreadable"] else storm_id
        assert row.field("name").startswith(name)
        link = row.find("a")
        assert link.attrs["href"] == f"/storms/{storm_id}/"
        assert row.field("id") == storm_id
        assert row.field("status") == ("ACTIVE" if storm["active"] else "INACTIVE")
        assert number(row.field("tasks")) == len(tasks)
        assert number(row.field("workers")) == len(known.workers(storm_id))
        assert number(row.field("alive")) == alive
        if alive < len(tasks):
            assert f"{len(tasks) - alive} dead" in row.field("alive")
        else:
            assert "dead" not in row.field("alive")
    assert "unreadable" in storm_row(doc, BROKEN).field("name")
    assert "unreadable" not in storm_row(doc, HEALTHY).field("name")
    # a running storm's uptime, an inactive storm's none
    assert storm_row(doc, HEALTHY).field("uptime") == "1h 0m"
    assert storm_row(doc, PAUSED).field("uptime") == "—"


def test_lost_supervisors_stand_out(client, known_cluster):
    known = known_cluster
    for url in ("/", "/supervisors/"):
        doc = get_page(client, url)
        table = doc.by_id("supervisor-table")
        for sup_id in (known.lost_supervisor, known.stale_supervisor):
            row = table.find("tr", data_supervisor_id=sup_id)
            assert "lost" in row.classes
            assert "lost" in row.field("state")
        healthy = table.find("tr", data_supervisor_id="sup-a")
        assert "lost" not in healthy.classes
        assert healthy.field("state") == "ok"
        assert healthy.field("host") == "host-a.example"
        assert number(healthy.field("slots-total")) == 4


class _Disconnected:
    """The source as it is while ZooKeeper is away: last synced at a known time."""

    zk_connected = False
    synced_at = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
    syncing = False  # read once, before ZooKeeper went

    def __init__(self, source):
        self.source = source

    def cluster_view(self):
        return self.source.cluster_view()

    def storm_view(self, storm_id):
        return self.source.storm_view(storm_id)


def test_every_page_says_when_zookeeper_is_disconnected(client, known_cluster, monkeypatch):
    monkeypatch.setattr(views, "get_source", lambda: _Disconnected(get_source()))
    for url in ("/", f"/storms/{HEALTHY}/", f"/storms/{HEALTHY}/tasks/1/", "/errors/"):
        doc = get_page(client, url)
        zk = doc.by_id("zk-status")
        assert zk.attrs["data-connected"] == "false", url
        assert zk.words == "ZooKeeper disconnected (stale since 22:13:20 UTC)", url


# -- a storm's page ------------------------------------------------------------------


@pytest.mark.parametrize("stormui_mirror", [True, False], ids=["mirror", "direct"])
def test_storm_page_summary_stats_components_and_workers(client, known_cluster):
    known = known_cluster
    doc = get_page(client, f"/storms/{HEALTHY}/")
    tasks = known.storm_tasks(HEALTHY)
    assert doc.by_id("storm-name").words == "healthy"
    assert doc.by_id("storm-id").words == HEALTHY
    assert doc.by_id("storm-status").words == "ACTIVE"
    assert doc.by_id("storm-uptime").words == "1h 0m"
    assert number(doc.by_id("storm-workers").text) == len(known.workers(HEALTHY))
    assert number(doc.by_id("storm-tasks").text) == len(tasks)
    assert number(doc.by_id("storm-tasks-alive").text) == len(tasks)

    # stats by window: the storm's figures come from its spouts
    stats = doc.by_id("storm-stats")
    spout_stats = [t.beat.stats for t in tasks if t.component_id == "words"]
    for window in ("600", "10800", "86400", "all-time"):
        row = stats.find("tr", data_window=window)
        want = expected_window(spout_stats, window)
        assert number(row.field("acked")) == want["acked"], window
        assert number(row.field("failed")) == want["failed"], window
        assert row.field("latency") == f"{want['latency']:,.2f}", window

    # the spouts and bolts tables show the selected window, all time by default
    spout = doc.by_id("spout-table").find("tr", data_component_id="words")
    want = expected_window(spout_stats, "all-time")
    assert number(spout.field("tasks")) == 2
    assert number(spout.field("emitted")) == want["emitted"]
    assert number(spout.field("transferred")) == want["transferred"]
    bolt = doc.by_id("bolt-table").find("tr", data_component_id="count")
    bolt_stats = [t.beat.stats for t in tasks if t.component_id == "count"]
    assert number(bolt.field("tasks")) == 3
    assert number(bolt.field("acked")) == expected_window(bolt_stats, "all-time")["acked"]
    assert bolt.find("a").attrs["href"] == f"/storms/{HEALTHY}/components/count/"

    ten_minutes = get_page(client, f"/storms/{HEALTHY}/?window=600")
    spout = ten_minutes.by_id("spout-table").find("tr", data_component_id="words")
    assert number(spout.field("emitted")) == expected_window(spout_stats, "600")["emitted"]

    workers = doc.by_id("worker-table").find_all("tr", data_storm_id=HEALTHY)
    shown = {(w.field("node"), int(w.field("port"))) for w in workers}
    assert shown == known.workers(HEALTHY)
    for w in workers:
        node, port = w.field("node"), int(w.field("port"))
        on_it = sorted(t.task_id for t in tasks if (t.node, t.port) == (node, port))
        assert [int(i) for i in w.field("task-ids").split()] == on_it
        assert number(w.field("tasks")) == len(on_it)


def test_storm_page_marks_dead_tasks_and_last_errors(client, known_cluster):
    known = known_cluster
    doc = get_page(client, f"/storms/{TROUBLED}/")
    now = time.time()
    sink_tasks = known.component_tasks(TROUBLED, "sink")
    dead = sum(not t.alive(now) for t in sink_tasks)
    assert dead == 2
    sink = doc.by_id("bolt-table").find("tr", data_component_id="sink")
    assert number(sink.field("alive")) == len(sink_tasks) - dead
    assert f"{dead} dead" in sink.field("alive")
    # the last error is the component's newest: "dead task's error" and "timeout B" share a
    # second; the one listed first among equals comes first, as in the error feed
    newest = known.errors(TROUBLED, "sink")[0]
    assert newest[2] in sink.field("last-error")
    assert "recent" in sink.find(data_field="last-error").classes
    # a component typed by its stats only is a spout; one with no type is listed with bolts
    assert doc.by_id("spout-table").find("tr", data_component_id="src") is not None
    mystery = doc.by_id("bolt-table").find("tr", data_component_id="mystery")
    assert "unknown type" in mystery.field("id")
    # the unreadable task node is named, while the rest renders
    assert f"/tasks/{TROUBLED}/15" in doc.by_id("unreadable-notice").words


def test_storm_with_unreadable_node_still_renders(client, known_cluster):
    doc = get_page(client, f"/storms/{BROKEN}/")
    h1 = doc.find("h1")
    assert "unreadable" in h1.words
    assert doc.by_id("storm-id").words == BROKEN
    assert number(doc.by_id("storm-tasks").text) == 1
    assert "could not be read" in doc.by_id("unreadable-notice").words


# -- a component's page --------------------------------------------------------------


def test_component_page_tasks_and_errors_newest_first(client, known_cluster):
    known = known_cluster
    response = client.get(f"/storms/{TROUBLED}/components/sink/")
    assert response.status_code == 200
    doc = parse(response)
    now = time.time()
    tasks = known.component_tasks(TROUBLED, "sink")
    assert number(doc.by_id("component-tasks").text) == len(tasks)
    assert number(doc.by_id("component-tasks-alive").text) == sum(t.alive(now) for t in tasks)
    rows = doc.by_id("task-table").find_all("tr", data_storm_id=TROUBLED)
    assert [int(r.attrs["data-task-id"]) for r in rows] == [t.task_id for t in tasks]
    for row, task in zip(rows, tasks, strict=True):
        assert (
            row.field("host")
            == {"sup-gone": "host-gone.example", "sup-b": "host-b.example"}[task.node]
        )
        assert int(row.field("port")) == task.port
        if task.alive(now):
            assert "dead" not in row.classes
            assert row.field("state") == "alive"
        else:
            assert "dead" in row.classes
            assert row.field("state") == "dead"
    # a task with no heartbeat has no age; one beating 100 s ago shows it
    by_id = {int(r.attrs["data-task-id"]): r for r in rows}
    assert by_id[11].field("heartbeat-age") == "—"
    assert by_id[12].field("heartbeat-age") in ("1m ago", "2m ago")

    errors = doc.by_id("component-errors").find_all("li")
    shown = [e.find("pre").text for e in errors]
    assert shown == [text for _, _, text, _ in known.errors(TROUBLED, "sink")]
    # error text is data: escaped, never markup
    body = response.content.decode()
    assert HOSTILE_ERROR not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert doc.find("script", src=None) is None  # no inline script at all


def test_component_page_window_selects_task_stats(client, known_cluster):
    known = known_cluster
    doc = get_page(client, f"/storms/{HEALTHY}/components/words/?window=10800")
    for task in known.component_tasks(HEALTHY, "words"):
        row = doc.by_id("task-table").find("tr", data_task_id=str(task.task_id))
        assert (
            number(row.field("emitted")) == expected_window([task.beat.stats], "10800")["emitted"]
        )
    selected = doc.by_id("component-stats").find("tr", cls="selected")
    assert selected.attrs["data-window"] == "10800"


# -- a task's page ----------------------------------------------------------------------


def test_task_page_shows_errors_in_full_with_line_breaks(client, known_cluster):
    known = known_cluster
    doc = get_page(client, f"/storms/{TROUBLED}/tasks/10/")
    task = known.tasks[(TROUBLED, 10)]
    assert doc.by_id("task-state").words == "alive"
    assert doc.by_id("task-component").words == "src"
    assert doc.by_id("task-hostport").words == "host-a.example:6702"
    assert "UTC" in doc.by_id("task-heartbeat").words
    errors = doc.by_id("task-errors").find_all("li")
    texts = [e.find("pre", cls="error-text").text for e in errors]
    # newest first, the multi-line one complete to its last frame
    assert texts == [text for _, text in reversed(task.errors)]
    assert MULTILINE_ERROR in texts
    assert texts[texts.index(MULTILINE_ERROR)].count("\n") == MULTILINE_ERROR.count("\n")
    # both are under 30 minutes old, so both are highlighted
    assert all("recent" in e.classes for e in errors)
    times = [e.find("time") for e in errors]
    assert all(t.attrs["datetime"].endswith("Z") for t in times)
    assert all(t.words.endswith(" UTC") for t in times)
    assert "ago" in errors[0].find(cls="ago").words

    stats = doc.by_id("task-stats").find("tr", data_window="all-time")
    want = expected_window([task.beat.stats], "all-time")
    assert number(stats.field("emitted")) == want["emitted"]


def test_dead_task_page_says_dead(client, known_cluster):
    doc = get_page(client, f"/storms/{TROUBLED}/tasks/11/")
    h1 = doc.find("h1")
    assert "dead" in h1.classes
    assert "dead" in h1.words
    assert doc.by_id("task-state").words == "dead"
    assert doc.by_id("task-heartbeat").words == "none"


def test_task_with_unreadable_info_is_marked(client, known_cluster):
    doc = get_page(client, f"/storms/{TROUBLED}/tasks/15/")
    assert "unreadable" in doc.find("h1").words
    assert f"/tasks/{TROUBLED}/15" in doc.by_id("unreadable-notice").words


# -- supervisors ------------------------------------------------------------------------


def test_supervisor_pages_show_workers_and_their_tasks(client, known_cluster):
    known = known_cluster
    doc = get_page(client, "/supervisors/")
    assert number(doc.by_id("supervisors-count").text) == len(known.supervisors)
    sections = doc.find_all("section", cls="supervisor-detail")
    assert {s.attrs["data-supervisor-id"] for s in sections} >= set(known.supervisors)

    doc = get_page(client, "/supervisors/sup-a/")
    assert doc.by_id("supervisor-host").words == "host-a.example"
    assert doc.by_id("supervisor-state").words == "ok"
    assert number(doc.by_id("supervisor-slots-total").text) == 4
    assert doc.by_id("supervisor-uptime").words == "16m 40s"
    rows = doc.by_id("worker-table").find("tbody").find_all("tr")
    shown = {
        (r.attrs["data-storm-id"], int(r.field("port"))): sorted(
            int(a.attrs["data-task-id"]) for a in r.find_all("a", cls="task-chip")
        )
        for r in rows
    }
    want = {}
    for t in known.tasks.values():
        if t.node == "sup-a":
            want.setdefault((t.storm_id, t.port), []).append(t.task_id)
    assert shown == {k: sorted(v) for k, v in want.items()}

    gone = get_page(client, f"/supervisors/{known.lost_supervisor}/")
    assert "lost" in gone.find("h1").words
    assert gone.by_id("supervisor-state").words == "lost"
    chips = gone.find_all("a", cls="task-chip")
    assert {int(c.attrs["data-task-id"]) for c in chips} == {11, 12}
    assert all("dead" in c.words for c in chips)


# -- the error feed page ------------------------------------------------------------------


def test_error_feed_newest_first_and_filters(client, known_cluster):
    known = known_cluster
    doc = get_page(client, "/errors/")
    feed = doc.by_id("error-feed")
    items = feed.find_all("li")
    assert [i.find("pre").text for i in items] == [text for _, _, text, _ in known.errors()]
    first = items[0]
    assert first.attrs["data-storm-id"] == TROUBLED
    assert first.attrs["data-task-id"] == "10"
    assert first.attrs["data-component-id"] == "src"
    assert "recent" in first.classes

    doc = get_page(client, f"/errors/?storm={HEALTHY}")
    items = doc.by_id("error-feed").find_all("li")
    assert [i.find("pre").text for i in items] == ["healthy storm's old error"]
    assert "selected" in doc.by_id("filter-storm").find("option", value=HEALTHY).attrs

    doc = get_page(client, "/errors/?component=sink&q=TIMEOUT")
    items = doc.by_id("error-feed").find_all("li")
    assert [i.find("pre").text for i in items] == ["timeout B", "timeout A"]
    assert doc.by_id("filter-q").attrs["value"] == "TIMEOUT"

    doc = get_page(client, "/errors/?q=" + quote("<script>"))
    assert [i.find("pre").text for i in doc.by_id("error-feed").find_all("li")] == [HOSTILE_ERROR]

    doc = get_page(client, "/errors/?q=nothing-like-this")
    assert doc.by_id("error-feed").find_all("li") == []
    assert "match" in doc.by_id("no-errors").words


# -- unknown and hostile ids ------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/storms/no-such-storm/",
        "/storms/../",
        "/storms/a%2Fb/",
        "/storms/" + "x" * 300 + "/",
        "/storms/%00/",
        "/storms/x/tasks/abc/",
        f"/storms/{HEALTHY}/tasks/abc/",
        f"/storms/{HEALTHY}/tasks/-1/",
        f"/storms/{HEALTHY}/tasks/99/",
        f"/storms/{HEALTHY}/components/no-such-component/",
        f"/storms/{HEALTHY}/components/..%2F..%2Fstorms/",
        f"/storms/{HEALTHY}/components/" + "c" * 300 + "/",
        "/supervisors/no-such-supervisor/",
        "/supervisors/%00/",
        "/no/such/page/",
    ],
)
def test_unknown_or_hostile_ids_give_our_404(client, known_cluster, url):
    response = client.get(url)
    assert response.status_code == 404
    doc = parse(response)
    assert doc.find("h1").words == "Not found"
    assert "Traceback" not in response.content.decode()
    assert doc.find("a", href="/") is not None


def test_a_failing_page_gives_our_500_without_a_traceback(client, monkeypatch):
    def broken():
        raise RuntimeError("secret internals")

    monkeypatch.setattr(views, "get_source", broken)
    client.raise_request_exception = False
    response = client.get("/")
    assert response.status_code == 500
    body = response.content.decode()
    assert "Server error" in body
    assert "secret internals" not in body
    assert "Traceback" not in body


# -- deployment: DEBUG off, static files, logins --------------------------------------


def test_pages_render_with_debug_off_and_static_files_served(client, settings, known_cluster):
    settings.DEBUG = False
    doc = get_page(client, "/")
    css = doc.find("link", rel="stylesheet").attrs["href"]
    js = doc.find("script").attrs["src"]
    for url in (css, js):
        response = client.get(url)
        assert response.status_code == 200, url
        assert b"".join(response.streaming_content)
    # no inline scripts or styles: a strict Content-Security-Policy can be added
    for url in ("/", f"/storms/{TROUBLED}/", f"/storms/{TROUBLED}/tasks/10/", "/errors/"):
        doc = get_page(client, url)
        assert all("src" in s.attrs for s in doc.find_all("script")), url
        assert doc.find_all("style") == []
        assert not [e for e in doc.iter() if "style" in e.attrs or "onclick" in e.attrs], url


PAGES = [
    "/",
    f"/storms/{HEALTHY}/",
    f"/storms/{HEALTHY}/components/words/",
    f"/storms/{HEALTHY}/tasks/1/",
    "/supervisors/",
    "/supervisors/sup-a/",
    "/errors/",
]


def test_login_required_mode_redirects_anonymous_users(
    client, settings, known_cluster, django_user_model
):
    settings.STORMUI_LOGIN_REQUIRED = True
    for url in PAGES:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"] == f"/accounts/login/?next={quote(url)}"
    login = client.get("/accounts/login/")
    assert login.status_code == 200
    assert parse(login).find("input", name="password") is not None

    django_user_model.objects.create_user("oncall", password="a-long-password-1")
    response = client.post(
        "/accounts/login/",
        {"username": "oncall", "password": "a-long-password-1", "next": f"/storms/{HEALTHY}/"},
    )
    assert response.status_code == 302
    assert response["Location"] == f"/storms/{HEALTHY}/"
    for url in PAGES:
        assert client.get(url).status_code == 200, url
    assert "oncall" in parse(client.get("/")).find(cls="account").words


def test_open_mode_serves_pages_to_anonymous_users(client, known_cluster):
    for url in PAGES:
        doc = get_page(client, url)
        assert doc.find("a", href="/accounts/login/?next=" + quote(url)) is not None


# -- the filters behind the times --------------------------------------------------------


def test_time_filters():
    from stormui.templatetags import dashboard as f

    assert f.duration(3600) == "1h 0m"
    assert f.duration(90061) == "1d 1h"
    assert f.duration(59) == "59s"
    assert f.duration(None) == "—"
    assert f.ago_secs(5) == "5s ago"
    assert f.ago_secs(180) == "3m ago"
    assert f.ago_secs(-3) == "just now"
    assert f.ago(1000, 1180) == "3m ago"
    assert f.utc(0) == "1970-01-01 00:00:00 UTC"
    assert f.iso(0) == "1970-01-01T00:00:00Z"
    assert f.is_recent(1000, 1000 + 29 * 60)
    assert not f.is_recent(1000, 1000 + 30 * 60)
