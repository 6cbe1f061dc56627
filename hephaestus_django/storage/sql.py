"""PostgreSQL statements of the storage's hot path, built once per shape.

Every identifier comes from the models' metadata (quoted by the connection) and every value is a
parameter, so the f-strings below cannot inject anything (hence ``noqa: S608`` for the file).
"""
# ruff: noqa: S608

from __future__ import annotations

import functools
from typing import Any

from django.db import connection
from django.db.models import Field, JSONField, Model
from django.db.models.fields.reverse_related import ForeignObjectRel

from hephaestus_django.core.ports import CLAIMED, QUEUED
from hephaestus_django.storage.models import HistoryEntry, StepRun, WorkflowInstance
from hephaestus_django.storage.models import Timer as TimerRow

HISTORY_COLUMNS = ("seq", "kind", "step", "event", "timestamp", "context_updates", "attempt", "error", "duration",
                   "delay", "traceback")
RUN_COLUMNS = ("step", "attempt", "state", "queue_name", "priority", "concurrency_limit", "enqueued", "worker",
               "token", "task_id", "dispatched_at", "claimed_at", "heartbeat_at")
_SQL_TYPES = {"PositiveIntegerField": "integer", "CharField": "varchar", "TextField": "text",
              "DateTimeField": "timestamptz", "JSONField": "jsonb", "FloatField": "double precision",
              "BooleanField": "boolean", "SmallIntegerField": "smallint", "BigIntegerField": "bigint",
              "IntegerField": "integer", "UUIDField": "uuid", "PositiveSmallIntegerField": "smallint"}


def _cast(field: Any) -> str:
    """The type to cast a parameter to for ``field`` (never a length: too long values must fail)."""
    return _SQL_TYPES.get(field.get_internal_type()) or field.db_type(connection)


def extra_values(rows: Any) -> list[Any]:
    """Parameters of unsaved model instances, column by column, prepared as an INSERT would."""
    params = []
    for row in rows:
        for field in row._meta.concrete_fields:
            params.append(field.get_db_prep_save(field.pre_save(row, True), connection))
    return params


def extra_shape(rows: Any) -> tuple[tuple[type[Model], int], ...]:
    """(model, number of rows) for each run of consecutive rows of one model."""
    shape: list[tuple[type[Model], int]] = []
    for row in rows:
        if shape and shape[-1][0] is type(row):
            shape[-1] = (type(row), shape[-1][1] + 1)
        else:
            shape.append((type(row), 1))
    return tuple(shape)


def _extra_sql(source: str, shape: tuple[tuple[type[Model], int], ...]) -> list[str]:
    """CTE parts inserting the extra rows, only when ``source`` (the write) returned its row."""
    parts = []
    for index, (model, rows) in enumerate(shape):
        fields = model._meta.concrete_fields
        names = ", ".join(_quoted_column(f) for f in fields)
        casts = ", ".join(f"%s::{_cast(f)}" for f in fields)
        values = ", ".join(f"({casts})" for _ in range(rows))
        parts.append(f"x{index} AS (INSERT INTO {_qn(model._meta.db_table)} ({names}) "
                     f"SELECT v.* FROM {source} CROSS JOIN (VALUES {values}) AS v)")
    return parts


def _same(value: Any) -> Any:
    return value


@functools.cache
def pg_adapters() -> dict[str, Any]:
    """Per column, what turns a value into a psycopg parameter: JSON columns go through the
    field's encoder (as ``Field.get_db_prep_save`` would); everything else psycopg adapts itself."""
    adapters: dict[str, Any] = {}
    for prefix, meta in (("", WorkflowInstance._meta), ("history.", HistoryEntry._meta), ("run.", StepRun._meta)):
        for field in meta.concrete_fields:
            if isinstance(field, JSONField):
                adapter: Any = functools.partial(_adapt_json, encoder=field.encoder)
            else:
                adapter = _same
            adapters[prefix + field.name] = adapters[prefix + field.attname] = adapter
    return adapters


def _adapt_json(value: Any, encoder: Any) -> Any:
    return None if value is None else connection.ops.adapt_json_value(value, encoder)


def _qn(name: str) -> str:
    return connection.ops.quote_name(name)


def _concrete(model: type[Model], name: str) -> Field[Any, Any]:
    """Field ``name`` of ``model``, which has a column."""
    field = model._meta.get_field(name)
    if isinstance(field, ForeignObjectRel) or field.column is None:
        raise TypeError(f"{model.__name__}.{name} has no column")
    return field


def _quoted_column(field: Field[Any, Any]) -> str:
    """The quoted column of a concrete field."""
    if field.column is None:
        raise TypeError(f"{field!r} has no column")
    return _qn(field.column)


def _column(model: type[Model], name: str) -> str:
    return _quoted_column(_concrete(model, name))


def _values_sql(model: type[Model], columns: tuple[str, ...], rows: int) -> str:
    """``(VALUES (%s::type, ...), ...)`` for ``rows`` rows of ``columns`` (casts let PostgreSQL type
    the rows of a VALUES list without looking at the target table)."""
    casts = ", ".join(f"%s::{_cast(model._meta.get_field(c))}" for c in columns)
    return "(VALUES " + ", ".join(f"({casts})" for _ in range(rows)) + ")"


def _insert_from(model: type[Model], source: str, columns: tuple[str, ...], rows: int) -> str:
    """``INSERT INTO model (instance, columns) SELECT source.id, v.* FROM source CROSS JOIN (VALUES ...) v``."""
    meta = model._meta
    names = ", ".join(_column(model, c) for c in columns)
    return (f"INSERT INTO {_qn(meta.db_table)} ({_column(model, 'instance')}, {names}) "
            f"SELECT {source}.{_quoted_column(WorkflowInstance._meta.pk)}, v.* FROM {source} "
            f"CROSS JOIN {_values_sql(model, columns, rows)} AS v")


def _runs_sql(source: str, rows: int) -> str:
    """Insert runs, renewing the run of a step that is already there (a step re-run at once)."""
    key = f"{_column(StepRun, 'instance')}, {_column(StepRun, 'step')}"
    sets = ", ".join(f"{_column(StepRun, c)} = EXCLUDED.{_column(StepRun, c)}" for c in RUN_COLUMNS[1:])
    return f"{_insert_from(StepRun, source, RUN_COLUMNS, rows)} ON CONFLICT ({key}) DO UPDATE SET {sets}"


@functools.lru_cache(maxsize=256)
def write_sql(columns: tuple[str, ...], check_revision: bool, holder: bool, entries: int, release: bool,
              finished: bool, runs: int, extra: tuple[tuple[type[Model], int], ...] = (), keep: bool = False) -> str:
    """The statement that stores a state change, built once per shape (identifiers from the models'
    metadata; every value is a parameter). One data-modifying CTE: the instance UPDATE (guarded by
    its revision, and by the run its worker holds), the INSERT of its history entries, the DELETE of
    the run that ended (and, for a finished instance, of its unclaimed runs and its timers; with
    ``keep``, of the unclaimed runs of steps not in the array parameter: a compensating instance
    left them), and the INSERT of the runs it made runnable. Nothing but the UPDATE happens when the
    UPDATE matches no row."""
    meta = WorkflowInstance._meta
    pk = _quoted_column(meta.pk)
    run_table, run_instance = _qn(StepRun._meta.db_table), _column(StepRun, "instance")
    sets = ", ".join(f"{_column(WorkflowInstance, name)} = %s" for name in columns)
    where = f"{pk} = %s"
    if check_revision:
        where += f" AND {_column(WorkflowInstance, 'revision')} = %s"
    if holder:
        col = functools.partial(_column, StepRun)
        where += (f" AND EXISTS (SELECT 1 FROM {run_table} WHERE {run_instance} = %s AND {col('step')} = %s"
                  f" AND {col('worker')} = %s AND {col('attempt')} = %s AND {col('state')} = '{CLAIMED}')")
    parts = [f"u AS (UPDATE {_qn(meta.db_table)} SET {sets} WHERE {where} RETURNING {pk})"]
    if entries:
        parts.append(f"h AS ({_insert_from(HistoryEntry, 'u', HISTORY_COLUMNS, entries)})")
    if release or finished or keep:
        ended = []
        if release:
            ended.append(f"r.{_column(StepRun, 'step')} = %s")
        if finished:
            ended.append(f"r.{_column(StepRun, 'state')} <> '{CLAIMED}'")
        elif keep:
            step = _column(StepRun, "step")
            ended.append(f"(r.{_column(StepRun, 'state')} <> '{CLAIMED}' AND NOT r.{step} = ANY(%s))")
        parts.append(f"d AS (DELETE FROM {run_table} r USING u WHERE r.{run_instance} = u.{pk} "
                     f"AND ({' OR '.join(ended)}))")
    if finished:
        timer_table = _qn(TimerRow._meta.db_table)
        parts.append(f"t AS (DELETE FROM {timer_table} t USING u WHERE t.{_column(TimerRow, 'instance')} = u.{pk})")
    if runs:
        parts.append(f"n AS ({_runs_sql('u', runs)})")
    parts.extend(_extra_sql("u", extra))
    return "WITH " + ", ".join(parts) + " SELECT count(*) FROM u"


@functools.lru_cache(maxsize=64)
def create_sql(columns: tuple[str, ...], runs: int, extra: tuple[tuple[type[Model], int], ...] = ()) -> str:
    """Insert an instance (nothing when its uniqueness slot is taken) and its first runs, in one statement."""
    meta = WorkflowInstance._meta
    pk, slot = _quoted_column(meta.pk), _column(WorkflowInstance, "unique_slot")
    names = ", ".join(_column(WorkflowInstance, name) for name in columns)
    values = ", ".join("%s" for _ in columns)
    parts = [f"i AS (INSERT INTO {_qn(meta.db_table)} ({names}) VALUES ({values}) "
             f"ON CONFLICT ({slot}) WHERE {slot} IS NOT NULL DO NOTHING RETURNING {pk})"]
    if runs:
        parts.append(f"n AS ({_insert_from(StepRun, 'i', RUN_COLUMNS, runs)})")
    parts.extend(_extra_sql("i", extra))
    return "WITH " + ", ".join(parts) + f" SELECT {pk} FROM i"


#: In the select list of a claim made outside any transaction: its (implicit) transaction commits
#: without waiting for the WAL to reach the disk. A claim lost in a database crash is harmless:
#: the run is still queued and its task is taken, which recovery notices after the grace (and
#: any outcome written later is durable, and flushes the claim's WAL with it).
ASYNC_COMMIT = "set_config('synchronous_commit', 'off', true) AS async_commit"


def _claim_set() -> str:
    """``UPDATE runs SET`` clause of a claim (parameters: the worker, the claim and heartbeat times)."""
    col = functools.partial(_column, StepRun)
    return (f"UPDATE {_qn(StepRun._meta.db_table)} SET {col('state')} = '{CLAIMED}', {col('worker')} = %s, "
            f"{col('claimed_at')} = %s, {col('heartbeat_at')} = %s, {col('enqueued')} = true")


def _read_claimed(async_commit: bool) -> str:
    """The SELECT reading the run claimed in CTE ``c`` and its instance (run columns prefixed
    ``run_``), committed asynchronously when ``async_commit``."""
    meta = WorkflowInstance._meta
    col = functools.partial(_column, StepRun)
    columns = ", ".join(f"w.{_quoted_column(f)}" for f in meta.concrete_fields)
    run_columns = ", ".join(f"c.{col(c)} AS run_{c}" for c in RUN_COLUMNS)
    extra = f", {ASYNC_COMMIT}" if async_commit else ""
    return (f"SELECT {columns}, {run_columns}{extra} FROM {_qn(meta.db_table)} w "
            f"JOIN c ON w.{_quoted_column(meta.pk)} = c.{col('instance')}")


@functools.lru_cache(maxsize=4)
def claim_sql(async_commit: bool = False) -> str:
    """Claim the queued run with a token (no concurrency limit) and read it and its instance, in one
    statement; the run's columns come back prefixed ``run_``."""
    col = functools.partial(_column, StepRun)
    return (f"WITH c AS ({_claim_set()} "
            f"WHERE {col('token')} = %s AND {col('state')} = '{QUEUED}' AND {col('concurrency_limit')} IS NULL "
            f"RETURNING *) {_read_claimed(async_commit)}")


def _ready_task(tasks: type[Model], ready: str, extra: str = "") -> str:
    """The waiting task whose id is the candidate run's token (``r.token``), locked unless another
    worker holds it. As a LATERAL subquery with a row lock (never flattened), a plan can only probe
    the task table's primary key once per candidate: stale statistics on a table that grew in a
    burst cannot make it a scan of the whole queue."""
    tcol = functools.partial(_column, tasks)
    return (f"SELECT q.{tcol('id')} AS id FROM {_qn(tasks._meta.db_table)} q WHERE q.{tcol('id')} = r.token "
            f"AND q.{tcol('status')} = '{ready}'{extra} FOR UPDATE OF q SKIP LOCKED")


def _retire_sql(tasks: type[Model], done: str) -> str:
    """The CTE that marks the task taken in ``t`` as ``done`` (parameters: started, finished, note)."""
    task_table = _qn(tasks._meta.db_table)
    tcol = functools.partial(_column, tasks)
    return (f"d AS (UPDATE {task_table} SET {tcol('status')} = '{done}', {tcol('started_at')} = %s, "
            f"{tcol('finished_at')} = %s, {tcol('return_value')} = %s FROM t WHERE {task_table}.{tcol('id')} = t.id "
            f"RETURNING t.id)")


@functools.lru_cache(maxsize=4)
def steal_sql(tasks: type[Model], ready: str, done: str, async_commit: bool) -> str:
    """Claim up to a number of queued runs of an instance whose tasks still wait unclaimed in a task
    table of this database (``tasks``: its model; id = the run's token), and retire those tasks, in
    one statement (committed asynchronously, like a claim)."""
    run_table = _qn(StepRun._meta.db_table)
    col = functools.partial(_column, StepRun)
    return (f"WITH t AS (SELECT x.id FROM (SELECT {col('token')} AS token FROM {run_table} "
            f"WHERE {col('instance')} = %s AND {col('state')} = '{QUEUED}' AND {col('concurrency_limit')} IS NULL "
            f"AND {col('queue_name')} = %s AND {col('priority')} = %s) r "
            f"CROSS JOIN LATERAL ({_ready_task(tasks, ready)}) x LIMIT %s), {_retire_sql(tasks, done)} "
            f"{_claim_set()} FROM d WHERE {col('token')} = d.id "
            f"AND {col('state')} = '{QUEUED}' RETURNING {col('step')}, {col('attempt')}, {col('token')}"
            + (f", {ASYNC_COMMIT}" if async_commit else ""))


#: How many of the oldest queued runs of a routing :func:`take_next_sql` looks at (the tasks of
#: the first ones may be taken by other workers at that very moment).
NEXT_CANDIDATES = 16


@functools.lru_cache(maxsize=4)
def take_next_sql(tasks: type[Model], ready: str, done: str, async_commit: bool) -> str:
    """Claim one of the oldest queued runs of a routing, of any instance, whose task still waits
    unclaimed in a task table of this database (``tasks``: its model, with the columns of
    django-tasks-db's; id = the run's token) and that no task of a higher priority on that queue
    waits before; retire that task; read the run and its instance (as :func:`claim_sql`), in one
    statement. Parameters: the run's queue and priority; the task's backend and queue, the latest
    date and now (what is due), the task's priority twice; the retiring times and note; the worker
    and its claim times. An ordered scan finds the first waiting task of a higher priority."""
    run_table, task_table = _qn(StepRun._meta.db_table), _qn(tasks._meta.db_table)
    col = functools.partial(_column, StepRun)
    tcol = functools.partial(_column, tasks)
    backend = f" AND q.{tcol('backend_name')} = %s"
    due = f"(h.{tcol('run_after')} = %s OR h.{tcol('run_after')} <= %s)"  # no run_after (the latest date), or due
    return (f"WITH t AS (SELECT x.id FROM (SELECT {col('token')} AS token FROM {run_table} "
            f"WHERE {col('state')} = '{QUEUED}' AND {col('concurrency_limit')} IS NULL AND {col('queue_name')} = %s "
            f"AND {col('priority')} = %s ORDER BY {col('dispatched_at')} LIMIT {NEXT_CANDIDATES}) r "
            f"CROSS JOIN LATERAL ({_ready_task(tasks, ready, backend)}) x "
            f"WHERE COALESCE((SELECT h.{tcol('priority')} FROM {task_table} h WHERE h.{tcol('status')} = '{ready}' "
            f"AND h.{tcol('queue_name')} = %s AND {due} ORDER BY h.{tcol('priority')} DESC LIMIT 1), %s) <= %s "
            f"LIMIT 1), "
            f"{_retire_sql(tasks, done)}, "
            f"c AS ({_claim_set()} FROM d WHERE {col('token')} = d.id AND {col('state')} = '{QUEUED}' "
            f"RETURNING {run_table}.*) {_read_claimed(async_commit)}")


def slot_lock(step: str) -> None:
    """PostgreSQL: serialise, per step, the claims that count its concurrency slots (until commit)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"hephaestus-slots:{step}"])


# ---- other databases (SQLite): one plain statement per table, texts built once ------------------------
@functools.cache
def _prep(model: type[Model], name: str) -> Any:
    field = _concrete(model, name)
    return lambda value: field.get_db_prep_save(value, connection)


def prepared(model: type[Model], values: dict[str, Any]) -> list[Any]:
    """``values`` as parameters for ``model``'s columns, prepared as the ORM would save them."""
    return [_prep(model, name)(value) for name, value in values.items()]


@functools.lru_cache(maxsize=64)
def update_sql(columns: tuple[str, ...], check_revision: bool, holder: bool) -> str:
    """UPDATE of an instance row, guarded by its revision and by the claim of its worker."""
    meta = WorkflowInstance._meta
    col = functools.partial(_column, StepRun)
    sets = ", ".join(f"{_column(WorkflowInstance, name)} = %s" for name in columns)
    where = f"{_quoted_column(meta.pk)} = %s"
    if check_revision:
        where += f" AND {_column(WorkflowInstance, 'revision')} = %s"
    if holder:
        where += (f" AND EXISTS (SELECT 1 FROM {_qn(StepRun._meta.db_table)} WHERE {col('instance')} = %s "
                  f"AND {col('step')} = %s AND {col('worker')} = %s AND {col('attempt')} = %s "
                  f"AND {col('state')} = '{CLAIMED}')")
    return f"UPDATE {_qn(meta.db_table)} SET {sets} WHERE {where}"


@functools.lru_cache(maxsize=64)
def insert_sql(model: type[Model], columns: tuple[str, ...], rows: int) -> str:
    """INSERT of ``rows`` rows of ``model``, each with its instance and ``columns``."""
    names = ", ".join(_column(model, c) for c in ("instance", *columns))
    marks = "(" + ", ".join("%s" for _ in range(len(columns) + 1)) + ")"
    return f"INSERT INTO {_qn(model._meta.db_table)} ({names}) VALUES {', '.join([marks] * rows)}"


@functools.cache
def move_run_sql() -> str:
    """Turn the run of one step of an instance into another run (a chain moving on)."""
    sets = ", ".join(f"{_column(StepRun, c)} = %s" for c in RUN_COLUMNS)
    return (f"UPDATE {_qn(StepRun._meta.db_table)} SET {sets} "
            f"WHERE {_column(StepRun, 'instance')} = %s AND {_column(StepRun, 'step')} = %s")
