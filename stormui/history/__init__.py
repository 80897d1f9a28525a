"""The history: what ZooKeeper forgets, kept in the dashboard's database.

The contract is ``docs/contract/history.md``. ZooKeeper holds only the present
(each task's newest ten errors, the storms that exist, the heartbeats of tasks
alive now); the dashboard sees every change already (the mirror) and knows who
acted (the audit log), so it keeps what would be lost:

- :mod:`.errors`: every error node seen, once, grouped by fingerprint, with the
  errors ZooKeeper trimmed before they were read counted (``missed``);
- :mod:`.timeline`: what happened to storms, tasks, supervisors and the
  connection, and every admin action with its user;
- :mod:`.series`: each storm's and component's rates over time, rolled up.

Exactly one process writes it, the relaying one (:func:`stormui.live.ensure_relay`
starts the :class:`~.recorder.HistoryRecorder` beside the relay); every process
reads it. See :mod:`.recorder` for how writes are batched, bounded and retried.
"""
