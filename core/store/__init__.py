"""Where tasks are kept: the `TaskStore` contract (base.py) and its SQLite implementation (repo.py, db.py).

Importing this package is cheap (no database driver): the engine names the
contract and its data types from here and opens a concrete store through a
`StoreFactory`.
"""

from core.store.base import MAX_FILTER_IDS, UNSET, StoreFactory, TaskFilter, TaskPatch, TaskStore

__all__ = ["MAX_FILTER_IDS", "UNSET", "StoreFactory", "TaskFilter", "TaskPatch", "TaskStore"]
