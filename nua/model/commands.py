"""The commands the DB writer executes: small frozen dataclasses, one per operation.

A command is trusted data: build it with :mod:`nua.model.checks`, which
validates what a client sent and hashes passwords in the caller's thread, so that
the writer's serial section is database work only. Send it to the writer with
``nua.actors.call.call(directory.lookup("db_writer"), command)``; the reply resolves
once the transaction holding the command is durable, with a JSON-ready value (see
each class) or a :class:`nua.model.errors.ModelError`. The commands that only read
are answered the same way by the DB reader (``nua.actors.db_reader``), which does
not wait behind writes. List commands answer one page: ``{"items", "next"}``.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from nua.model.audit import AuditEntry

# Columns of ``users`` that UpdateUser may change; "password_hash" takes a hash from nua.model.password.
UserField = Literal["username", "email", "role", "display_name", "password_hash"]

# Rows per page of a list command built without a limit (``[rpc] page_size``'s default).
DEFAULT_LIMIT = 100


# -- users ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddUser:
    """Insert a user. Replies with the user's dict.

    ``id`` ``None``, negative or already taken means the next free id (the
    largest id plus one). Fails with ConflictError naming ``username`` or ``email``.
    """

    username: str
    email: str
    password_hash: str
    id: int | None = None
    role: str = "user"
    display_name: str = ""


@dataclass(frozen=True)
class GetUser:
    """Replies with the user's dict; NotFoundError when there is none."""

    id: int


@dataclass(frozen=True)
class ListUsers:
    """Replies with one page of user dicts ordered by id: ``{"items": [...], "next": id | None}``.

    ``all`` or no filter at all lists every user; otherwise a user is listed when
    its id is in ``ids``, its username in ``names`` or its email in ``mails``.
    The page holds at most ``limit`` users with an id above ``after``; ``next`` is
    the ``after`` of the following page, ``None`` on the last one.
    """

    all: bool = False
    ids: tuple[int, ...] = ()
    names: tuple[str, ...] = ()
    mails: tuple[str, ...] = ()
    limit: int = DEFAULT_LIMIT
    after: int | None = None


@dataclass(frozen=True)
class CountUsers:
    """Replies with the number of users."""


@dataclass(frozen=True)
class UpdateUser:
    """Set one field of one user; replies with the updated user's dict.

    NotFoundError for an unknown id, ConflictError for a taken username or email.
    """

    id: int
    field: UserField
    value: str


@dataclass(frozen=True)
class DeleteUsers:
    """Delete the users with these ids; replies with how many existed and were deleted."""

    ids: tuple[int, ...]


@dataclass(frozen=True)
class DeleteAllUsers:
    """Delete every user; replies with how many were deleted."""


# -- groups -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AddGroup:
    """Create a group; replies with its dict. ConflictError when the name is taken."""

    name: str
    source: str = ""


@dataclass(frozen=True)
class ListGroups:
    """Replies with one page of group dicts ordered by name, each with its member count.

    ``{"items": [...], "next": name | None}``: groups named after ``after``, at most ``limit``.
    """

    limit: int = DEFAULT_LIMIT
    after: str | None = None


@dataclass(frozen=True)
class DeleteGroup:
    """Delete a group (its memberships go with it); replies with 1, or 0 when there was none."""

    name: str


@dataclass(frozen=True)
class AddGroupMembers:
    """Add users to a group; replies with how many memberships were new.

    NotFoundError for an unknown group or user id (then nothing is added).
    """

    group: str
    user_ids: tuple[int, ...]


@dataclass(frozen=True)
class RemoveGroupMembers:
    """Remove users from a group; replies with how many memberships were removed."""

    group: str
    user_ids: tuple[int, ...]


@dataclass(frozen=True)
class GroupMembers:
    """Replies with one page of the member users' dicts ordered by id; NotFoundError for an unknown group.

    ``{"items": [...], "next": id | None}``: members with an id above ``after``, at most ``limit``.
    """

    group: str
    limit: int = DEFAULT_LIMIT
    after: int | None = None


# -- settings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GetSetting:
    """Replies with the setting's dict (``key``, ``value``, ``updated_at``); NotFoundError when absent."""

    key: str


@dataclass(frozen=True)
class SetSetting:
    """Create or replace a setting; replies with its dict. ``value`` is any JSON value."""

    key: str
    value: Any


@dataclass(frozen=True)
class DeleteSetting:
    """Delete a setting; replies with 1. NotFoundError when there is none."""

    key: str


@dataclass(frozen=True)
class ListSettings:
    """Replies with one page of setting dicts ordered by key.

    ``{"items": [...], "next": key | None}``: settings whose key sorts after ``after``, at most
    ``limit``, and (when ``max_bytes``) fewer once their JSON reaches about ``max_bytes``: values
    may be large, and a page must fit in a reply.
    """

    limit: int = DEFAULT_LIMIT
    after: str | None = None
    max_bytes: int = 0


# -- client keys ------------------------------------------------------------------------


@dataclass(frozen=True)
class AddKey:
    """Register a client public key (Z85) under ``name`` with ``role``; replies with the key's dict.

    ConflictError naming ``name`` or ``public_key`` when either is registered already.
    """

    name: str
    public_key: str
    role: str


@dataclass(frozen=True)
class EnsureKey(AddKey):
    """Register ``public_key`` under ``name`` with ``role``, replacing the key of that name if it differs.

    For the key the daemon makes for its own account: the file is the truth. Replies with the key's dict.
    """


@dataclass(frozen=True)
class ListKeys:
    """Replies with one page of key dicts ordered by name: ``{"items": [...], "next": name | None}``."""

    limit: int = DEFAULT_LIMIT
    after: str | None = None


@dataclass(frozen=True)
class RemoveKey:
    """Remove the key ``name``; replies with 1. NotFoundError when there is none."""

    name: str


@dataclass(frozen=True)
class MarkKeysSeen:
    """Set ``last_seen_at`` of these keys to now; replies with how many exist."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class IssueToken:
    """Give the key ``name`` the HTTP token ``token_id`` (its secret's SHA-256 ``token_hash``), replacing its last.

    Replies with the token's dict (name, token_id, created_at, expires_at; never the
    hash). NotFoundError when there is no such key.
    """

    name: str
    token_id: str
    token_hash: str
    expires_at: datetime


@dataclass(frozen=True)
class ListTokens:
    """Replies with one page of tokens ordered by key name, each with its key's role and hash, for the HTTP server.

    ``{"items": [{name, role, token_id, token_hash, expires_at (a datetime)}], "next": name | None}``.
    """

    limit: int = DEFAULT_LIMIT
    after: str | None = None


# -- the audit trail ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Audited:
    """Apply ``command`` and, only if it succeeds, record ``entry`` (outcome ``ok``) in the same transaction.

    Replies with ``command``'s own reply. A command that fails leaves no record,
    and a batch that does not commit takes its records with it: an acknowledged
    change always has its record, a rolled-back one never does. With slots: one is
    made at every audited call, in a third of the time.
    """

    command: Any
    entry: AuditEntry


@dataclass(frozen=True)
class ChangedOutside:
    """A change a call made outside the database (``what``: the server's key files rotated); replies with None.

    Applying it changes nothing: it exists to be sent while the call's audit entry
    is current, so that the change, like every other, commits its audit record.
    """

    what: str


@dataclass(frozen=True)
class RecordDenied:
    """Record a call refused for want of a role (outcome ``denied``, detail: the role ``needed``); replies with None."""

    entry: AuditEntry
    needed: str


@dataclass(frozen=True)
class ListAudit:
    """Replies with one page of audit records, newest first: ``{"items": [...], "next": id | None}``.

    Records at or after ``since`` (when given), by ``who`` and of ``method`` (when
    given), with an id below ``after``, at most ``limit``.
    """

    since: datetime | None = None
    who: str | None = None
    method: str | None = None
    limit: int = DEFAULT_LIMIT
    after: int | None = None


@dataclass(frozen=True)
class PruneAudit:
    """Delete up to ``most`` audit records older than ``before``, oldest first; replies with how many went."""

    before: datetime
    most: int


# -- services added at run time ----------------------------------------------------------


@dataclass(frozen=True)
class PutService:
    """Store a service's declaration (a JSON table); replies with its row dict.

    ``create``: a new service (ConflictError if the name is stored); otherwise a
    replacement (NotFoundError if it is not).
    """

    name: str
    config: dict[str, Any]
    create: bool


@dataclass(frozen=True)
class DeleteService:
    """Forget a stored service; replies with 1. NotFoundError when there is none."""

    name: str


@dataclass(frozen=True)
class ListServices:
    """Replies with every stored service's row dict, ordered by name (services are few: no pages)."""


# -- cron jobs and their runs (see nua.model.cron) -------------------------------------------


@dataclass(frozen=True)
class PutJob:
    """Store a job's declaration; replies with its row dict (``job_dict``).

    ``create``: a new job (ConflictError if the name is stored); otherwise a
    replacement (NotFoundError if it is not; its ``version`` goes up by one). A job
    of the settings file is refused (ConflictError): the file is its source.
    ``next_fire_at``: the first fire of the new declaration (``None`` when paused).
    """

    name: str
    config: dict[str, Any]
    owner: str
    owner_role: str
    next_fire_at: datetime | None
    create: bool


@dataclass(frozen=True)
class DeleteJob:
    """Forget a job added by RPC and its runs; replies with 1. NotFoundError, or ConflictError for a file's job."""

    name: str


@dataclass(frozen=True)
class SetJobPaused:
    """Pause (``next_fire_at`` None) or resume a job (from ``next_fire_at``); replies with its row dict.

    Its version goes up: a claim planned before is refused. NotFoundError when there is no such job.
    """

    name: str
    paused: bool
    next_fire_at: datetime | None


@dataclass(frozen=True)
class FileJob:
    """One job of the settings file, for :class:`SyncFileJobs`."""

    name: str
    config: dict[str, Any]
    owner_role: str
    paused: bool
    # Its first fire if its declaration is new or changed (a kept one keeps its stored next fire).
    next_fire_at: datetime | None


@dataclass(frozen=True)
class SyncFileJobs:
    """Make the stored jobs of the settings file be ``jobs``; replies with the names replaced, added and removed.

    A job whose declaration is unchanged keeps its next fire and version (a restart
    fires it when it would have fired); a changed one takes its new first fire. A
    job added by RPC under a name the file now declares is replaced by the file's.
    """

    jobs: tuple[FileJob, ...]


@dataclass(frozen=True)
class FireRecord:
    """What became of one fire: ``running`` (started now), ``missed`` or ``skipped``."""

    scheduled_at: datetime
    status: str
    detail: str = ""


@dataclass(frozen=True)
class ClaimFires:
    """Claim a job's due fires: advance its next fire and record each fire, in one transaction.

    Applied only if the job still has ``version`` and ``expected_next`` (else
    another daemon, or a change of the job, got there first: nothing is written).
    On PostgreSQL the job's row is locked with ``FOR UPDATE SKIP LOCKED``: a
    second daemon claiming at the same moment finds it locked and backs off. A fire
    recorded already is left as it is (never recorded or run twice). Replies
    ``{"claimed": bool, "runs": [ids of the running rows, in order], "recorded":
    [(scheduled_at, status, run id or None) of each fire recorded now], "job": row
    dict or None}`` (the job as stored when the claim is refused).
    """

    name: str
    version: int
    expected_next: datetime | None
    new_next: datetime | None
    fires: tuple[FireRecord, ...]
    claimed_by: str


@dataclass(frozen=True)
class StartRun:
    """Record a manual run (``cron_run_now``) as running; replies with its id. NotFoundError for no such job."""

    name: str
    claimed_by: str


@dataclass(frozen=True)
class FinishRun:
    """End a running run with ``status``; replies with 1, or 0 when it was not running (interrupted meanwhile)."""

    id: int
    status: str
    detail: str = ""
    exit_code: int | None = None


@dataclass(frozen=True)
class InterruptRuns:
    """Mark as ``interrupted`` the running runs with these ids; replies with how many were."""

    ids: tuple[int, ...]
    detail: str


@dataclass(frozen=True)
class ListRunning:
    """Replies with every running run's dict (the daemons' runs in progress: few), oldest first."""


@dataclass(frozen=True)
class ListJobs:
    """Replies with one page of job dicts ordered by name, each with its last run: ``{"items", "next"}``."""

    limit: int = DEFAULT_LIMIT
    after: str | None = None


@dataclass(frozen=True)
class GetJob:
    """Replies with the job's dict and its last run; NotFoundError when there is none."""

    name: str


@dataclass(frozen=True)
class ListRuns:
    """Replies with one page of a job's runs, newest first: ``{"items", "next": id | None}`` (ids below ``after``)."""

    job: str
    limit: int = DEFAULT_LIMIT
    after: int | None = None


@dataclass(frozen=True)
class PruneRuns:
    """Delete up to ``most`` ended runs that started (or were due) before ``before``; replies with how many went."""

    before: datetime
    most: int


Command = (
    AddUser
    | GetUser
    | ListUsers
    | CountUsers
    | UpdateUser
    | DeleteUsers
    | DeleteAllUsers
    | AddGroup
    | ListGroups
    | DeleteGroup
    | AddGroupMembers
    | RemoveGroupMembers
    | GroupMembers
    | GetSetting
    | SetSetting
    | DeleteSetting
    | ListSettings
    | AddKey
    | EnsureKey
    | ListKeys
    | RemoveKey
    | MarkKeysSeen
    | IssueToken
    | ListTokens
    | Audited
    | ChangedOutside
    | RecordDenied
    | ListAudit
    | PruneAudit
    | PutService
    | DeleteService
    | ListServices
    | PutJob
    | DeleteJob
    | SetJobPaused
    | SyncFileJobs
    | ClaimFires
    | StartRun
    | FinishRun
    | InterruptRuns
    | ListRunning
    | ListJobs
    | GetJob
    | ListRuns
    | PruneRuns
)
COMMAND_TYPES: tuple[type[Any], ...] = typing.get_args(Command)
# The commands that change nothing: the DB reader answers them, and a degraded
# writer still runs them when the database can be read.
READ_COMMANDS: tuple[type[Any], ...] = (
    GetUser,
    ListUsers,
    CountUsers,
    ListGroups,
    GroupMembers,
    GetSetting,
    ListSettings,
    ListKeys,
    ListTokens,
    ListAudit,
    ListServices,
    ListRunning,
    ListJobs,
    GetJob,
    ListRuns,
)

__all__ = [
    "COMMAND_TYPES",
    "DEFAULT_LIMIT",
    "READ_COMMANDS",
    "AddGroup",
    "AddGroupMembers",
    "AddKey",
    "AddUser",
    "Audited",
    "ChangedOutside",
    "ClaimFires",
    "Command",
    "CountUsers",
    "DeleteAllUsers",
    "DeleteGroup",
    "DeleteJob",
    "DeleteService",
    "DeleteSetting",
    "DeleteUsers",
    "EnsureKey",
    "FileJob",
    "FinishRun",
    "FireRecord",
    "GetJob",
    "GetSetting",
    "GetUser",
    "GroupMembers",
    "InterruptRuns",
    "IssueToken",
    "ListAudit",
    "ListGroups",
    "ListJobs",
    "ListKeys",
    "ListRunning",
    "ListRuns",
    "ListServices",
    "ListSettings",
    "ListTokens",
    "ListUsers",
    "MarkKeysSeen",
    "PruneAudit",
    "PruneRuns",
    "PutJob",
    "PutService",
    "RecordDenied",
    "RemoveGroupMembers",
    "RemoveKey",
    "SetJobPaused",
    "SetSetting",
    "StartRun",
    "SyncFileJobs",
    "UpdateUser",
    "UserField",
]
