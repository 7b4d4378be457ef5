"""The platform's state: SQLAlchemy Core tables and the commands the DB writer executes.

- :mod:`~nua.model.commands`: the typed command messages the DB writer handles;
- :mod:`~nua.model.checks`: client input -> command, or an InvalidError naming the field
  (passwords are hashed here, in the caller's thread);
- :mod:`~nua.model.errors`: not found, conflict, invalid, internal, each with JSON ``data``;
- :mod:`~nua.model.user`, :mod:`~nua.model.group`, :mod:`~nua.model.setting`, :mod:`~nua.model.key`
  (the client keys allowed to call the daemon): the tables
  and the dict form of their rows for replies;
- :mod:`~nua.model.audit`: the audit trail's table, its entries and the redaction of their params;
- :mod:`~nua.model.schema`: the recorded schema version and create-or-upgrade;
- :mod:`~nua.model.schema_version`: the version and the table recording it, without SQLAlchemy;
- :mod:`~nua.model.sqlite_check`: whether a SQLite database opens and takes writes, asked with
  the standard library before the daemon is ready;
- :mod:`~nua.model.engine`: the engine and its SQLite connection settings;
- :mod:`~nua.model.operations`: how each command reads or changes the database;
- :mod:`~nua.model.compiled`: the hot statements, compiled once and run on the driver;
- :mod:`~nua.model.base`: the metadata of the tables, UTC timestamps, one timestamp per transaction;
- :mod:`~nua.model.password`: scrypt hashes, verified in constant time;
- :mod:`~nua.model.text`: valid Unicode, NFC names without invisible characters, repaired old values.
"""
