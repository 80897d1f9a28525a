"""Arbitrary ids in every URL, and in every path builder: a 404 (or the refusal that fits),
never a 500, never a trace, never a node touched outside the root (nor, for an unknown
storm, inside it)."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterstate import mk_distributed_cluster_state, mk_storm_cluster_state, paths
from tests.security.conftest import assert_no_trace, assert_watches_inside, read_tree

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(240)]

REQUESTS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PURE = settings(max_examples=200, deadline=None)

# what an id in a URL may be: anything, including the separators, dots, NUL, controls,
# encoded slashes, very long, and bytes that are not UTF-8
raw_ids = st.one_of(
    st.text(min_size=1, max_size=20),
    st.text(st.sampled_from("/.%2F\x00\x01\x7f\u202e<>\"'?#&;\\ "), min_size=1, max_size=12),
    st.sampled_from(
        ["..", ".", "../..", "%2e%2e", "%2F", "a%2Fb", "..%2F..%2Fzookeeper", "\x00", "zookeeper"]
    ),
    st.text(min_size=256, max_size=400),
    st.binary(min_size=1, max_size=20),
)


def encodings(raw):
    """The ways a client may put ``raw`` into a path: fully encoded, or with its slashes bare."""
    if isinstance(raw, bytes):
        return [quote(raw, safe="")]
    data = raw.encode("utf-8", errors="surrogatepass")
    return list(dict.fromkeys([quote(data, safe=""), quote(data, safe="/%")]))


def check(response, allowed, url):
    assert response.status_code in allowed, (url, response.status_code, response.content[:300])
    assert_no_trace(response)
    if url.startswith("/api/"):
        try:
            body = json.loads(response.content)
        except ValueError:
            raise AssertionError(f"{url}: not JSON: {response.content[:300]!r}") from None
        assert set(body) == {"error"} or response.status_code == 200, body
    if response.status_code in (301, 302):
        location = response["Location"]
        assert location == "/" or location.startswith("/accounts/login/"), location


@pytest.fixture
def admin(db):
    return get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-1")


@REQUESTS
@given(raw=raw_ids, other=raw_ids)
def test_any_id_in_any_url_is_refused_cleanly(known_cluster, zk_conf, outside, admin, raw, other):
    from stormui.source import get_source

    known_ids = set(known_cluster.storms) | set(known_cluster.supervisors)
    inside_before = _inside(zk_conf)
    anonymous, operator = Client(), Client()
    operator.force_login(admin)
    for x in encodings(raw):
        for y in encodings(other)[:1]:
            if any(k in (x, y) for k in known_ids):
                continue
            reads = {
                f"/storms/{x}/": {404},
                f"/storms/{x}/components/{y}/": {404},
                f"/storms/{x}/tasks/{y}/": {404},
                f"/storms/{x}/tasks/1/": {404},
                f"/supervisors/{x}/": {404},
                f"/api/v1/topology/{x}": {404},
                f"/api/v1/topology/{x}?window={y}": {404, 400},
                f"/api/v1/topology/{x}/component/{y}": {404},
                f"/api/errors?storm={x}&component={y}&since={y}&limit={y}": {200, 400},
                f"/errors/?storm={x}&component={y}&q={y}": {200},
                f"/ws/storms/{x}/": {404},
            }
            for url, allowed in reads.items():
                check(anonymous.get(url), allowed, url)
            actions = {
                f"/storms/{x}/deactivate/": {404, 302, 400},
                f"/storms/{x}/remove/": {404, 302, 400},
                f"/api/v1/topology/{x}/deactivate": {404},
                f"/api/v1/topology/{x}/remove": {404},
                f"/api/v1/topology/{x}/kill/{y}": {404, 400},
                f"/api/v1/topology/{x}/kill/0": {404},
            }
            for url, allowed in actions.items():
                form = {"confirm": raw} if not url.startswith("/api/") else {}
                check(operator.post(url, form), allowed, url)
                # without a login: a refusal, never an action
                check(anonymous.post(url, form), {401, 302, 404}, url)
                # any other method: not allowed
                check(operator.put(url), {405, 404}, url)
    assert _inside(zk_conf) == inside_before  # an unknown storm: nothing changed
    outside.assert_unchanged()
    assert_watches_inside(get_source().state, known_cluster.root)


def _inside(zk_conf):
    state = mk_distributed_cluster_state({**zk_conf, "storm.zookeeper.root": "/"})
    try:
        # the known cluster is written once: nothing inside its root moves by itself
        return read_tree(state, zk_conf["storm.zookeeper.root"])
    finally:
        state.close()


# -- the path builders ------------------------------------------------------------------------

any_ids = st.one_of(
    st.text(max_size=300),
    st.sampled_from(["", ".", "..", "/", "a/b", "\x00", "\x1f", "\x7f", "\x9f", "x" * 256]),
    st.integers(),
    st.none(),
    st.binary(max_size=8),
)
any_task_ids = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=25),
    st.sampled_from(["0", "00", "07", "-1", "1.0", "١", "+1", " 1", "1 ", "9" * 19]),
    st.booleans(),
    st.none(),
    st.floats(),
)

STORM_BUILDERS = {
    paths.assignment_path: "assignments",
    paths.storm_path: "storms",
    paths.storm_task_root: "tasks",
    paths.taskbeat_storm_root: "taskbeats",
    paths.taskerror_storm_root: "taskerrors",
}
TASK_BUILDERS = {
    paths.task_path: "tasks",
    paths.taskbeat_path: "taskbeats",
    paths.taskerror_path: "taskerrors",
}


def _segments(path: str) -> list[str]:
    assert path.startswith("/")
    return path[1:].split("/")


@PURE
@given(value=any_ids)
def test_check_id_accepts_exactly_one_segment(value):
    try:
        checked = paths.check_id(value)
    except ValueError:
        valid = False
    else:
        valid = True
        assert checked is value
    expected = (
        isinstance(value, str)
        and 1 <= len(value) <= 255
        and value not in (".", "..")
        and not any(c == "/" or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value)
    )
    assert valid == expected
    assert paths.is_valid_id(value) == expected


@PURE
@given(value=any_ids)
def test_every_storm_and_supervisor_path_is_one_segment_below_its_subtree(value):
    builders = {**STORM_BUILDERS, paths.supervisor_path: "supervisors"}
    for build, subtree in builders.items():
        try:
            built = build(value)
        except ValueError:
            assert not paths.is_valid_id(value)
            continue
        assert _segments(built) == [subtree, value]


@PURE
@given(storm_id=any_ids, task_id=any_task_ids)
def test_every_task_path_is_two_segments_below_its_subtree(storm_id, task_id):
    for build, subtree in TASK_BUILDERS.items():
        try:
            built = build(storm_id, task_id)
        except ValueError:
            assert not paths.is_valid_id(storm_id) or not _is_task_id(task_id)
            continue
        assert paths.is_valid_id(storm_id) and _is_task_id(task_id)
        assert _segments(built) == [subtree, storm_id, str(int(task_id))]


def _is_task_id(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    return (
        isinstance(value, str)
        and 1 <= len(value) <= 18
        and all("0" <= c <= "9" for c in value)
        and (value == "0" or value[0] != "0")
    )


# -- reads with any id: refused before ZooKeeper, or answered from inside the root ------------


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(storm_id=any_ids, task_id=any_task_ids)
def test_reads_with_any_id_stay_inside_the_root(zk_conf, outside, storm_id, task_id):
    state = mk_distributed_cluster_state(zk_conf)
    reader = mk_storm_cluster_state(state)
    try:
        reads = [
            lambda: reader.storm_base(storm_id, callback=lambda _id: None),
            lambda: reader.assignment_info(storm_id, callback=lambda _id: None),
            lambda: reader.task_ids(storm_id),
            lambda: reader.heartbeat_tasks(storm_id),
            lambda: reader.supervisor_info(storm_id),
            lambda: reader.task_info(storm_id, task_id),
            lambda: reader.task_heartbeat(storm_id, task_id),
            lambda: reader.task_errors(storm_id, task_id),
        ]
        for read in reads:
            try:
                value = read()
            except ValueError:
                continue
            assert value in (None, [])  # nothing is there: the root is empty
        assert_watches_inside(state, zk_conf["storm.zookeeper.root"])
    finally:
        reader.disconnect()
        state.close()
    outside.assert_unchanged()
