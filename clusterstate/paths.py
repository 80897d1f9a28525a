"""ZooKeeper layout of a Storm cluster, as in Storm's ``backtype.storm.cluster``.

Every path is relative to the configured root (a chroot). Identifiers are
checked before any path is built: a bad one raises :class:`ValueError`, so no
caller can ever name a node outside its subtree.
"""

ASSIGNMENTS_ROOT = "assignments"
TASKS_ROOT = "tasks"
CODE_ROOT = "code"
STORMS_ROOT = "storms"
SUPERVISORS_ROOT = "supervisors"
TASKBEATS_ROOT = "taskbeats"
TASKERRORS_ROOT = "taskerrors"

ASSIGNMENTS_SUBTREE = "/" + ASSIGNMENTS_ROOT
TASKS_SUBTREE = "/" + TASKS_ROOT
CODE_SUBTREE = "/" + CODE_ROOT
STORMS_SUBTREE = "/" + STORMS_ROOT
SUPERVISORS_SUBTREE = "/" + SUPERVISORS_ROOT
TASKBEATS_SUBTREE = "/" + TASKBEATS_ROOT
TASKERRORS_SUBTREE = "/" + TASKERRORS_ROOT

SUBTREES = (
    ASSIGNMENTS_SUBTREE,
    TASKS_SUBTREE,
    STORMS_SUBTREE,
    SUPERVISORS_SUBTREE,
    TASKBEATS_SUBTREE,
    TASKERRORS_SUBTREE,
)

MAX_ID_LENGTH = 255


def check_id(value, kind: str = "id") -> str:
    """Return ``value`` if it is a valid storm, supervisor or component id.

    A valid id is one path segment: 1 to 255 characters, none of them ``/``,
    NUL or a control character, and not ``.`` or ``..``.

    :param value: the id to check.
    :param kind: what the id names, for the error message.
    :returns: ``value`` unchanged.
    :raises ValueError: if ``value`` is not a valid id.
    """
    if not isinstance(value, str):
        raise ValueError(f"{kind} must be a string, not {type(value).__name__}")
    if not 1 <= len(value) <= MAX_ID_LENGTH:
        raise ValueError(f"{kind} must be 1 to {MAX_ID_LENGTH} characters long")
    if value in (".", ".."):
        raise ValueError(f"{kind} must not be {value!r}")
    for ch in value:
        if ch == "/" or ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0:
            raise ValueError(f"{kind} must not contain {ch!r}")
    return value


def check_task_id(value) -> int:
    """Return ``value`` as a task id: a non-negative int.

    Strings of ASCII digits (as task ids appear in node names) are accepted
    in their one decimal form only: ``"7"``, never ``"07"``, so that no other
    node name, key or URL stands for the same task.

    :raises ValueError: if ``value`` is not a task id.
    """
    if isinstance(value, bool):
        raise ValueError("task id must be an integer")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("task id must not be negative")
        return value
    if (
        isinstance(value, str)
        and value.isascii()
        and value.isdigit()
        and len(value) <= 18
        and (value == "0" or value[0] != "0")
    ):
        return int(value)
    raise ValueError(f"task id must be a non-negative integer, not {value!r}")


def is_valid_id(value) -> bool:
    """True if :func:`check_id` accepts ``value``."""
    try:
        check_id(value)
    except ValueError:
        return False
    return True


def supervisor_path(supervisor_id: str) -> str:
    """``/supervisors/{supervisor-id}``."""
    return f"{SUPERVISORS_SUBTREE}/{check_id(supervisor_id, 'supervisor id')}"


def assignment_path(storm_id: str) -> str:
    """``/assignments/{storm-id}``."""
    return f"{ASSIGNMENTS_SUBTREE}/{check_id(storm_id, 'storm id')}"


def storm_path(storm_id: str) -> str:
    """``/storms/{storm-id}``."""
    return f"{STORMS_SUBTREE}/{check_id(storm_id, 'storm id')}"


def storm_task_root(storm_id: str) -> str:
    """``/tasks/{storm-id}``."""
    return f"{TASKS_SUBTREE}/{check_id(storm_id, 'storm id')}"


def task_path(storm_id: str, task_id: int) -> str:
    """``/tasks/{storm-id}/{task-id}``."""
    return f"{storm_task_root(storm_id)}/{check_task_id(task_id)}"


def taskbeat_storm_root(storm_id: str) -> str:
    """``/taskbeats/{storm-id}``."""
    return f"{TASKBEATS_SUBTREE}/{check_id(storm_id, 'storm id')}"


def taskbeat_path(storm_id: str, task_id: int) -> str:
    """``/taskbeats/{storm-id}/{task-id}``."""
    return f"{taskbeat_storm_root(storm_id)}/{check_task_id(task_id)}"


def taskerror_storm_root(storm_id: str) -> str:
    """``/taskerrors/{storm-id}``."""
    return f"{TASKERRORS_SUBTREE}/{check_id(storm_id, 'storm id')}"


def taskerror_path(storm_id: str, task_id: int) -> str:
    """``/taskerrors/{storm-id}/{task-id}``."""
    return f"{taskerror_storm_root(storm_id)}/{check_task_id(task_id)}"


def parent_path(path: str) -> str:
    """The parent of ``path`` (``/`` for a top-level node and for ``/``)."""
    head = path.rstrip("/").rsplit("/", 1)[0]
    return head or "/"


def tokenize_path(path: str) -> list[str]:
    """The non-empty segments of ``path``: ``/a/b`` gives ``["a", "b"]``."""
    return [seg for seg in path.split("/") if seg]


def join_path(*segments: str) -> str:
    """``/``-joined absolute path of ``segments``."""
    return "/" + "/".join(s.strip("/") for s in segments if s.strip("/"))
