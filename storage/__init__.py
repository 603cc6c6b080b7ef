"""Adapters for ``core.ports``: where posts and operational state are kept.

* ``storage.local.LocalPostStore`` — the embedded PostStore (SQLite + FTS5).
* ``storage.state.SqlStateStore`` — the StateStore on any SQLAlchemy URL.
* ``storage.spool.Spool`` — batches kept on disk while the PostStore is down.

Import the submodule you need; this package imports nothing on purpose so that
picking one adapter never loads the drivers of the others.
"""
