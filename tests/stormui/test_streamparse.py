"""Storm's REST API as a real client reads it: streamparse's ``sparse stats``.

streamparse (from PyPI, the test extra) fetches Storm UI's JSON through an SSH tunnel
to Nimbus; here its fetch is pointed at a real daphne serving the known cluster, and its
printing functions run for the cluster, a topology, a spout and a bolt. A field it reads
and does not find prints as ``MISSING``; a missing list crashes it.
"""

from __future__ import annotations

import json
import urllib.request

import pytest
from streamparse.cli import stats

from tests.stormui.conftest import HEALTHY, TROUBLED
from tests.stormui.served import Served

pytestmark = pytest.mark.timeout(180)

ENV = "served"

# the loopback, never through a proxy
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def served(zk_server, tmp_path_factory):
    s = Served(zk_server, tmp_path_factory.mktemp("streamparse"))
    yield s
    s.close()


@pytest.fixture
def sparse(served, monkeypatch):
    """streamparse's stats functions, fetching from the served dashboard."""
    fetched = []

    def get_ui_jsons(env_name, api_paths, config_file=None):
        assert env_name == ENV
        data = {}
        for api_path in api_paths:
            with _opener.open(served.url + api_path, timeout=30) as response:
                data[api_path] = json.load(response)
            fetched.append(api_path)
            # as streamparse does: an answer with an error is a failure
            assert not data[api_path].get("error"), data[api_path]
        return data

    def get_ui_json(env_name, api_path, config_file=None):
        return get_ui_jsons(env_name, [api_path], config_file=config_file)[api_path]

    monkeypatch.setattr(stats, "get_ui_jsons", get_ui_jsons)
    monkeypatch.setattr(stats, "get_ui_json", get_ui_json)
    monkeypatch.setattr(stats, "get_env_config", lambda name, config_file=None: (name, {}))
    stats.fetched = fetched
    return stats


def printed(capsys, run) -> str:
    run()
    out = capsys.readouterr().out
    assert "MISSING" not in out, out
    return out


def test_cluster_status(sparse, capsys):
    out = printed(capsys, lambda: sparse.display_stats(ENV))
    assert "# Cluster summary" in out and "# Supervisor summary" in out
    assert "healthy" in out and "troubled" in out
    assert sparse.fetched == [
        "/api/v1/cluster/summary",
        "/api/v1/topology/summary",
        "/api/v1/supervisor/summary",
    ]


def test_topology_status(sparse, capsys):
    out = printed(capsys, lambda: sparse.display_stats(ENV, topology_name="troubled"))
    assert "# Topology stats" in out and "All time" in out and "3h 0m 0s" in out
    assert "# Spouts (All time)" in out and "# Bolt (All time)" in out
    assert sparse.fetched[-1] == f"/api/v1/topology/{TROUBLED}"


def test_spout_status(sparse, capsys):
    out = printed(
        capsys, lambda: sparse.display_stats(ENV, topology_name="healthy", component_name="words")
    )
    assert "# Spout stats" in out and "# Output stats (All time)" in out
    assert "# Executors (All time)" in out and "[1-1]" in out
    assert sparse.fetched[-1] == f"/api/v1/topology/{HEALTHY}/component/words"


def test_bolt_status(sparse, capsys):
    out = printed(
        capsys, lambda: sparse.display_stats(ENV, topology_name="healthy", component_name="count")
    )
    assert "# Bolt stats" in out and "# Input stats (All time)" in out
    assert "# Output stats (All time)" in out
    assert "words" in out and "other" in out  # its inputs


def test_troubled_bolt_status(sparse, capsys):
    # a dead task, a stale one, an input component running no task here
    out = printed(
        capsys, lambda: sparse.display_stats(ENV, topology_name="troubled", component_name="sink")
    )
    assert "# Input stats (All time)" in out and "src" in out
