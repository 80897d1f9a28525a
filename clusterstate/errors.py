"""Exceptions raised by the cluster-state layer."""


class UnreadableNodeError(ValueError):
    """A node's data does not fit its schema.

    :param path: the node's path, relative to the root.
    :param reason: why it could not be read.
    """

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"unreadable node {path}: {reason}")


class NotConnectedError(ConnectionError):
    """The store is not connected; the operation was not attempted and is not queued."""
