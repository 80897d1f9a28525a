"""Both readers implement the one read contract, StormReader (the reads that
docs/contract/cluster-state.md lists)."""

import inspect

import pytest

from clusterstate import StormReader
from clusterstate.mirror import ClusterMirror
from clusterstate.storm import StormClusterState

READS = sorted(
    name
    for name, member in vars(StormReader).items()
    if inspect.isfunction(member) and not name.startswith("_")
)


def test_the_contract_names_every_read():
    assert READS == [
        "active_storms",
        "assignment_info",
        "assignments",
        "heartbeat_storms",
        "heartbeat_tasks",
        "storm_base",
        "supervisor_info",
        "supervisors",
        "task_error_storms",
        "task_errors",
        "task_errors_many",
        "task_heartbeat",
        "task_ids",
        "task_info",
        "task_storms",
    ]


@pytest.mark.parametrize("cls", [ClusterMirror, StormClusterState])
@pytest.mark.parametrize("name", READS)
def test_each_reader_implements_each_read(cls, name):
    method = getattr(cls, name)
    assert method is not getattr(StormReader, name), f"{cls.__name__}.{name} is not implemented"
    wanted = list(inspect.signature(getattr(StormReader, name)).parameters.values())
    given = list(inspect.signature(method).parameters.values())
    # the same parameters first; StormClusterState may add optional ones (its callbacks)
    assert [p.name for p in given[: len(wanted)]] == [p.name for p in wanted]
    assert all(p.default is not inspect.Parameter.empty for p in given[len(wanted) :])
