"""The one schema definition of the task store, rendered to SQLite and to PostgreSQL DDL.

`MIGRATIONS[i]` is the list of operations that upgrades a database from
version i to i+1 (never edit a shipped one; append a new version). The
operations are typed (create a table, add a column, create or drop an index,
fill a new column from an existing one: in SQL, or derived in Python) and each back end renders them:
`sqlite_statements` for core/store/db.py (version in `PRAGMA user_version`),
`postgres_statements` for core/store/pg.py (version in a `schema_version`
table, migrated under an advisory lock so nodes starting together migrate
once). A `Backfill` is not SQL: the back end runs `derive` over the rows in
Python, so both compute the same value (the host a task counts under).

Version 1 is the schema fetchdeck shipped before the shared queue; SQLite's
rendering of it is exactly that schema (tests/store/test_contract.py compares
it column by column with the shipped script), so a v1 database upgrades in
place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from core.store.rows import IS_WAITING, host_of


class ColumnType(Enum):
    """A column's type on both back ends: (SQLite, PostgreSQL)."""

    ID = ("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")  # ascending, never reused
    ROW_ID = ("INTEGER PRIMARY KEY", "BIGSERIAL PRIMARY KEY")  # ascending (SQLite may reuse a deleted top id)
    TEXT = ("TEXT", "TEXT")
    INTEGER = ("INTEGER", "BIGINT")
    REAL = ("REAL", "DOUBLE PRECISION")  # unix times, seconds
    BLOB = ("BLOB", "BYTEA")

    @property
    def sqlite(self) -> str:
        return self.value[0]

    @property
    def postgres(self) -> str:
        return self.value[1]


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType
    nullable: bool = False
    default: str | int | None = None

    def render(self, postgres: bool) -> str:
        parts = [self.name, self.type.postgres if postgres else self.type.sqlite]
        if self.type not in (ColumnType.ID, ColumnType.ROW_ID):
            if not self.nullable:
                parts.append("NOT NULL")
            if self.default is not None:
                parts.append(f"DEFAULT {_literal(self.default)}")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()  # a composite key (a single id key is its column's type)


@dataclass(frozen=True, slots=True)
class CreateTable:
    table: Table


@dataclass(frozen=True, slots=True)
class AddColumn:
    table: str
    column: Column


@dataclass(frozen=True, slots=True)
class CreateIndex:
    name: str
    table: str
    columns: tuple[str, ...]
    where: str = ""  # a partial index: only the rows matching this condition (the same SQL in both back ends)


@dataclass(frozen=True, slots=True)
class Backfill:
    """Set `column` of every row of `table` to derive(`source`) (keyed by the `id` column)."""

    table: str
    column: str
    source: str
    derive: Callable[[str], str]


@dataclass(frozen=True, slots=True)
class DropIndex:
    name: str


@dataclass(frozen=True, slots=True)
class CopyColumn:
    """Set `column` of every row of `table` to its `source` column (the same SQL in both back ends)."""

    table: str
    column: str
    source: str


Operation = CreateTable | AddColumn | CreateIndex | Backfill | DropIndex | CopyColumn


def _literal(value: str | int) -> str:
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


TEXT, INTEGER, REAL, BLOB = ColumnType.TEXT, ColumnType.INTEGER, ColumnType.REAL, ColumnType.BLOB

MIGRATIONS: list[list[Operation]] = [
    # 1: tasks and their log lines
    [
        CreateTable(Table("tasks", (
            Column("id", ColumnType.ID),
            Column("kind", TEXT),
            Column("url", TEXT),
            Column("name", TEXT),
            Column("folder", TEXT, default=""),
            Column("headers", TEXT, default="[]"),
            Column("status", TEXT),
            Column("is_live", INTEGER, default=0),
            Column("file", TEXT, nullable=True),
            Column("downloaded", INTEGER, default=0),
            Column("total", INTEGER, nullable=True),
            Column("segments_done", INTEGER, default=0),
            Column("segments_total", INTEGER, default=0),
            Column("error", TEXT, nullable=True),
            Column("options", TEXT, default=""),
            Column("created_at", REAL),
            Column("updated_at", REAL),
        ))),
        CreateIndex("tasks_status", "tasks", ("status", "id")),
        CreateTable(Table("task_logs", (
            Column("id", ColumnType.ROW_ID),
            Column("task_id", INTEGER),
            Column("ts", REAL),
            Column("text", TEXT),
        ))),
        CreateIndex("task_logs_task", "task_logs", ("task_id", "id")),
    ],
    # 2: the shared queue (leases, per-host accounting), durable download state, nodes
    [
        AddColumn("tasks", Column("host", TEXT, default="")),
        AddColumn("tasks", Column("node", TEXT, nullable=True)),
        AddColumn("tasks", Column("lease_gen", INTEGER, default=0)),
        AddColumn("tasks", Column("lease_expires", REAL, nullable=True)),
        AddColumn("tasks", Column("connections", INTEGER, default=0)),
        Backfill("tasks", "host", "url", host_of),
        CreateIndex("tasks_status_host", "tasks", ("status", "host")),
        CreateTable(Table("task_state", (
            Column("task_id", INTEGER),
            Column("key", TEXT),
            Column("value", BLOB),
        ), primary_key=("task_id", "key"))),
        CreateTable(Table("nodes", (
            Column("name", TEXT),
            Column("started_at", REAL),
            Column("heartbeat_at", REAL),
        ), primary_key=("name",))),
    ],
    # 3: the queue's next waiting tasks without walking past every finished one (a claim's cost stays flat
    # as the table grows: tests/bench/bench_scaleout.py)
    [
        CreateIndex("tasks_waiting", "tasks", ("id",), where="status = 'waiting'"),
    ],
    # 4: queue control (core/queue.py): priority (0 high, 1 normal, 2 low), an explicit position (tasks so far
    # keep creation order: position = id), a start time; the waiting-tasks index in the new queue order; the
    # top position (a new task goes after it) and the next start time found without a scan
    [
        AddColumn("tasks", Column("priority", INTEGER, default=1)),
        AddColumn("tasks", Column("position", REAL, default=0)),
        AddColumn("tasks", Column("start_at", REAL, nullable=True)),
        CopyColumn("tasks", "position", "id"),
        DropIndex("tasks_waiting"),
        CreateIndex("tasks_waiting", "tasks", ("priority", "position", "id"), where=IS_WAITING),
        CreateIndex("tasks_position", "tasks", ("position",)),
        CreateIndex("tasks_start_at", "tasks", ("start_at",), where=f"{IS_WAITING} AND start_at IS NOT NULL"),
    ],
]

VERSION = len(MIGRATIONS)


def _statements(op: Operation, postgres: bool) -> list[str]:
    if isinstance(op, CreateTable):
        lines = [column.render(postgres) for column in op.table.columns]
        if op.table.primary_key:
            lines.append(f"PRIMARY KEY ({', '.join(op.table.primary_key)})")
        body = ",\n    ".join(lines)
        return [f"CREATE TABLE {op.table.name} (\n    {body}\n)"]
    if isinstance(op, AddColumn):
        return [f"ALTER TABLE {op.table} ADD COLUMN {op.column.render(postgres)}"]
    if isinstance(op, CreateIndex):
        partial = f" WHERE {op.where}" if op.where else ""
        return [f"CREATE INDEX {op.name} ON {op.table}({', '.join(op.columns)}){partial}"]
    if isinstance(op, DropIndex):
        return [f"DROP INDEX {op.name}"]
    if isinstance(op, CopyColumn):
        return [f"UPDATE {op.table} SET {op.column} = {op.source}"]
    return []  # a Backfill is run by the back end, not rendered


def sqlite_statements(op: Operation) -> list[str]:
    """The SQLite DDL of one operation (none for a Backfill)."""
    return _statements(op, postgres=False)


def postgres_statements(op: Operation) -> list[str]:
    """The PostgreSQL DDL of one operation (none for a Backfill)."""
    return _statements(op, postgres=True)
