"""Hot statements compiled once per dialect and run straight on the driver's cursor.

The DB writer's serial section is the daemon's write throughput. Going through
``Connection.execute`` costs each statement a cache-key computation, an execution
context, events and a result object: about four times what the driver itself
spends on a small INSERT. For the few statements on the hot paths (a setting
write, a user add) this module keeps SQLAlchemy's compiler, its dialect-specific
SQL and its type conversions (``bind_processor``: JSON, timestamps), and skips the
rest. It runs on the same driver connection, inside the transaction the writer
opened through SQLAlchemy, so savepoints, commit and rollback behave as for any
other statement.

Results are the driver's raw rows, without result processing: use it only for
statements that return nothing or plain integers and strings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler

from nua.model.base import UtcDateTime

_NO_PARAMS: Mapping[str, Any] = {}


@dataclass(frozen=True)
class _Bind:
    """One parameter of a compiled statement: where its value comes from and how it is converted."""

    name: str
    key: str
    required: bool
    default: Any
    process: Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Compiled:
    sql: str
    compiled: SQLCompiler
    # Parameter names in placeholder order for positional paramstyles (qmark...), else None.
    order: tuple[str, ...] | None
    processors: Mapping[str, Callable[[Any], Any]]
    # The plan construct_params follows for plain bound parameters, None when the
    # statement needs its general path (escaped names, callables, post-compile).
    binds: tuple[_Bind, ...] | None
    # For rows given as values in ``column_keys`` order (:meth:`Prepared.execute_rows`):
    # each column's converter, and where each placeholder takes its value from.
    columns: _Columns | None = None

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        if self.binds is None:
            bound = self.compiled.construct_params(dict(values))
            for name, process in self.processors.items():
                if name in bound:
                    bound[name] = process(bound[name])
        else:
            # What construct_params computes, without its per-call generality: about
            # a tenth of the writer's time per setting write went there.
            bound = {}
            for bind in self.binds:
                if bind.key in values:
                    value = values[bind.key]
                elif bind.name in values:
                    value = values[bind.name]
                elif bind.required:
                    self.compiled.construct_params(dict(values))  # raises SQLAlchemy's own error
                    value = None  # pragma: no cover - construct_params raised
                else:
                    value = bind.default
                bound[bind.name] = value if bind.process is None else bind.process(value)
        if self.order is None:
            return bound
        return tuple(bound[name] for name in self.order)


@dataclass(frozen=True)
class _Columns:
    """How a row of values in ``column_keys`` order becomes the driver's parameters, without a dict per row."""

    # (column index, converter) for each column that has one.
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]
    # Positional paramstyles: the column index of each placeholder, None when it is the columns' own order.
    order: tuple[int, ...] | None
    # Named paramstyles: each column's parameter name (None for positional ones).
    names: tuple[str, ...] | None

    def parameters(self, row: Sequence[Any]) -> Sequence[Any] | Mapping[str, Any]:
        if self.processors:
            values = list(row)
            for index, process in self.processors:
                values[index] = process(values[index])
            row = values
        return self.arranged(row)

    def arranged(self, row: Sequence[Any]) -> Sequence[Any] | Mapping[str, Any]:
        """``row``'s values (converted already) in the driver's paramstyle."""
        if self.names is not None:
            return dict(zip(self.names, row, strict=True))
        if self.order is not None:
            return tuple(row[index] for index in self.order)
        return row


def _column_plan(
    binds: tuple[_Bind, ...] | None, column_keys: Sequence[str] | None, order: tuple[str, ...] | None
) -> _Columns | None:
    """The plan of :meth:`Prepared.execute_rows`: only when the parameters are ``column_keys``, each once."""
    if binds is None or column_keys is None:
        return None
    by_key = {bind.key: bind for bind in binds}
    if len(by_key) != len(binds) or set(by_key) != set(column_keys) or len(column_keys) != len(binds):
        return None
    names = [by_key[key].name for key in column_keys]
    processors = tuple(
        (index, process) for index, key in enumerate(column_keys) if (process := by_key[key].process) is not None
    )
    if order is None:
        return _Columns(processors, None, tuple(names))
    index_of = {name: index for index, name in enumerate(names)}
    if set(order) != set(index_of) or len(order) != len(names):
        return None
    placed = tuple(index_of[name] for name in order)
    return _Columns(processors, None if placed == tuple(range(len(names))) else placed, None)


def _plain_binds(compiled: SQLCompiler, processors: Mapping[str, Callable[[Any], Any]]) -> tuple[_Bind, ...] | None:
    """The parameters of ``compiled`` as a fixed plan, or None when only construct_params handles them.

    Built from the compiler's public attributes, then checked once against
    ``construct_params`` itself: a statement (or a SQLAlchemy release) for which the
    plan would bind anything else takes the general path instead.
    """
    if compiled.escaped_bind_names:
        return None
    binds = []
    for bindparam, name in compiled.bind_names.items():
        if bindparam.callable is not None or bindparam.expanding or bindparam.literal_execute:
            return None
        binds.append(_Bind(name, bindparam.key, bool(bindparam.required), bindparam.value, processors.get(name)))
    plan = tuple(binds)
    probe = {bind.key: object() for bind in plan}
    planned = {bind.name: probe[bind.key] for bind in plan}
    return plan if compiled.construct_params(probe) == planned else None


def _last_one(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``process`` remembering its last value: a batch's rows share one timestamp object.

    Only for immutable values (datetimes): the same object always converts the same.
    """
    last: tuple[Any, Any] = (object(), None)

    def remembered(value: Any) -> Any:
        nonlocal last
        seen = last  # one read: another thread may replace the pair, never tear it
        if seen[0] is value:
            return seen[1]
        converted = process(value)
        last = (value, converted)
        return converted

    return remembered


# One remembering converter of UtcDateTime per dialect, shared by every prepared statement:
# a batch's setting write and its audit records convert the transaction's time once.
_TIMESTAMPS: dict[tuple[str, str, str], Callable[[Any], Any]] = {}


def _timestamps(key: tuple[str, str, str], process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """The dialect's shared converter of :class:`UtcDateTime` values (``process`` makes it, the first time).

    UtcDateTime has no parameters: every column of it converts the same on one dialect.
    """
    shared = _TIMESTAMPS.get(key)
    if shared is None:
        shared = _TIMESTAMPS.setdefault(key, _last_one(process))
    return shared


def _as_is(value: Any) -> Any:
    return value


class Prepared:
    """A Core statement, compiled on first use for each dialect it meets.

    ``column_keys`` names the parameters an INSERT or UPDATE is executed with (as
    ``Connection.execute(statement, {...})`` would infer from the dict).
    """

    def __init__(self, statement: Executable, column_keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        self.column_keys = list(column_keys) if column_keys is not None else None
        self._by_dialect: dict[tuple[str, str, str], _Compiled] = {}

    def _compiled(self, dialect: Dialect) -> _Compiled:
        key = (dialect.name, dialect.driver, dialect.paramstyle)
        found = self._by_dialect.get(key)
        if found is None:
            compiled = self.statement.compile(dialect=dialect, column_keys=self.column_keys)  # type: ignore[attr-defined]
            if not isinstance(compiled, SQLCompiler):  # pragma: no cover - DDL is not a hot statement
                msg = f"cannot prepare {type(self.statement).__name__}"
                raise TypeError(msg)
            processors: dict[str, Callable[[Any], Any]] = {}
            for bind, name in compiled.bind_names.items():
                process = bind.type.dialect_impl(dialect).bind_processor(dialect)
                if process is not None:
                    processors[name] = _timestamps(key, process) if isinstance(bind.type, UtcDateTime) else process
            order = tuple(compiled.positiontup) if dialect.positional and compiled.positiontup is not None else None
            binds = _plain_binds(compiled, processors)
            columns = _column_plan(binds, self.column_keys, order)
            found = _Compiled(compiled.string, compiled, order, processors, binds, columns)
            self._by_dialect[key] = found
        return found

    def execute(self, conn: Connection, values: Mapping[str, Any] = _NO_PARAMS) -> int:
        """Run the statement; return the driver's rowcount."""
        compiled = self._compiled(conn.dialect)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(compiled.sql, compiled.parameters(values))
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def execute_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement once for each of ``rows``, in one driver call (``executemany``)."""
        compiled = self._compiled(conn.dialect)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            # Every row takes the same paramstyle (the dialect's): all sequences or all mappings.
            cursor.executemany(compiled.sql, [compiled.parameters(values) for values in rows])  # type: ignore[arg-type]
        finally:
            cursor.close()

    def converter(self, dialect: Dialect, key: str) -> Callable[[Any], Any]:
        """What makes a value of the column ``key`` the driver's on ``dialect`` (its bind processor), to keep."""
        compiled = self._compiled(dialect)
        columns = compiled.columns
        if columns is None or compiled.binds is None:
            return _as_is
        for bind in compiled.binds:
            if bind.key == key:
                return _as_is if bind.process is None else bind.process
        msg = f"{key!r} is not a parameter of this statement"
        raise KeyError(msg)

    def execute_rows(self, conn: Connection, rows: Sequence[Sequence[Any]], *, converted: bool = False) -> None:
        """As :meth:`execute_many`, each row given as its values in ``column_keys`` order.

        No dict is built and looked up per row: for the DB writer's batch of audit
        records, where the mapping form cost about as much as the driver's insert.
        ``converted``: the values are the driver's already (:meth:`converter`,
        once for a value every row shares), so on a positional paramstyle whose
        placeholders follow the columns the rows go to the driver as they are.
        """
        compiled = self._compiled(conn.dialect)
        columns = compiled.columns
        if columns is None:  # a statement the plan does not cover: through the mappings
            keys = self.column_keys or []
            self.execute_many(conn, [dict(zip(keys, row, strict=True)) for row in rows])
            return
        if columns.order is None and columns.names is None and (converted or not columns.processors):
            parameters: Sequence[Any] = rows
        elif converted:
            parameters = [columns.arranged(row) for row in rows]
        else:
            parameters = [columns.parameters(row) for row in rows]
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(compiled.sql, parameters)
        finally:
            cursor.close()

    def first(self, conn: Connection, values: Mapping[str, Any] = _NO_PARAMS) -> tuple[Any, ...] | None:
        """Run a query; return its first row as the driver gives it, or None."""
        compiled = self._compiled(conn.dialect)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(compiled.sql, compiled.parameters(values))
            row = cursor.fetchone()
        finally:
            cursor.close()
        return None if row is None else tuple(row)


__all__ = ["Prepared"]
