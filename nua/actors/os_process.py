"""One service's OS processes: start, identify, signal and wait for them, safely.

Rules every function here keeps (see the field notes, "Supervising OS processes"):

- a service starts in a session (and process group) of its own, so that a stop
  reaches every process it started (:func:`launch`);
- a pid is signalled only after checking that it is still the process started,
  by its creation time (:class:`Identity`; psutil compares it before each signal),
  so a recycled pid is never hit;
- waits are on pidfds (Linux 5.3+), never a sleep-and-look loop (:func:`wait_gone`);
- processes that left the group (``setsid``, a double fork) are found by the
  ``NUA_SERVICE`` mark in their environment (:func:`escaped`), reported and killed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import select
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nua.service_settings import SERVICE_MARK, ServiceConfig, clean_environment

if TYPE_CHECKING:
    import psutil

# psutil is imported where it is used: a daemon without services never loads it (2 MiB, part of a start).

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux ``prctl``); ``False`` elsewhere."""
    import ctypes  # noqa: PLC0415 - once, at the daemon's start

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # libc's, already loaded in this process
    except (OSError, AttributeError):
        return False
    return bool(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)


@dataclass(frozen=True)
class Identity:
    """A process as started: its pid and creation time (psutil's, seconds since the epoch)."""

    pid: int
    create_time: float

    @classmethod
    def of(cls, pid: int) -> Identity | None:
        """The identity of the live process ``pid``, ``None`` if there is none."""
        import psutil  # noqa: PLC0415 - see the module's imports

        try:
            return cls(pid, psutil.Process(pid).create_time())
        except psutil.Error:
            return None

    def process(self) -> psutil.Process | None:
        """The psutil process, only if ``pid`` is still the process started (not gone, not recycled)."""
        import psutil  # noqa: PLC0415 - see the module's imports

        try:
            process = psutil.Process(self.pid)
        except psutil.Error:
            return None
        try:
            same = abs(process.create_time() - self.create_time) < 0.01
        except psutil.Error:
            return None
        return process if same and process.status() != psutil.STATUS_ZOMBIE else None


def launch(config: ServiceConfig, mark: str) -> subprocess.Popen[bytes]:
    """Start ``config``'s command in a new session, stdout and stderr on one pipe, stdin from /dev/null.

    As root, with ``user``: that account's uid, its gid (or ``group``'s) and its
    supplementary groups. Raises :class:`OSError` when the program cannot be started.
    """
    account = pwd.getpwnam(config.user) if config.user is not None else pwd.getpwuid(os.geteuid())
    gid = account.pw_gid
    if config.group is not None:
        import grp  # noqa: PLC0415 - only services naming a group need it

        gid = grp.getgrnam(config.group).gr_gid
    switch = os.geteuid() == 0 and (account.pw_uid != 0 or config.group is not None)
    env = clean_environment(config, account.pw_dir, account.pw_name, mark)
    return subprocess.Popen(  # noqa: S603 - the argv is the operator's declared command, no shell unless asked
        config.argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=config.cwd,
        env=env,
        start_new_session=True,
        close_fds=True,
        user=account.pw_uid if switch else None,
        group=gid if switch else None,
        extra_groups=os.getgrouplist(account.pw_name, gid) if switch else None,
    )


def group_members(pgid: int, born_since: float) -> list[psutil.Process]:
    """The live processes of group ``pgid``, whose leader was created at ``born_since``; none if recycled.

    The kernel gives no new process a pid still in use as a group id, so while any
    member lives, ``pgid`` is the group started; once the leader is gone a process
    with that pid is another's, and its group is not this one.
    """
    import psutil  # noqa: PLC0415 - see the module's imports

    try:
        if abs(psutil.Process(pgid).create_time() - born_since) >= 0.01:
            return []
    except psutil.NoSuchProcess:
        pass
    except psutil.Error:
        return []
    members = []
    for process in psutil.process_iter(["create_time"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
            if (
                os.getpgid(process.pid) == pgid
                and process.info["create_time"] >= born_since - 0.01
                and process.status() != psutil.STATUS_ZOMBIE
            ):
                members.append(process)
    return members


def escaped(mark: str, pgid: int, among: Iterable[psutil.Process] | None = None) -> list[psutil.Process]:
    """Live processes bearing ``mark`` (``NUA_SERVICE`` in their environment) outside the group ``pgid``.

    Looked for ``among`` the given processes (a subreaper's :func:`own_descendants`), else among all.
    """
    import psutil  # noqa: PLC0415 - see the module's imports

    found = []
    for process in psutil.process_iter() if among is None else among:
        with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
            if process.pid == os.getpid() or os.getpgid(process.pid) == pgid:
                continue
            if process.status() != psutil.STATUS_ZOMBIE and process.environ().get(SERVICE_MARK) == mark:
                found.append(process)
    return found


def signal_all(processes: Iterable[psutil.Process], signum: int) -> None:
    """Send ``signum`` to each process that is still the one found (psutil checks its creation time)."""
    import psutil  # noqa: PLC0415 - see the module's imports

    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.send_signal(signum)


def wait_gone(processes: Iterable[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Wait, on their pidfds, until every process has ended or ``timeout_s`` passed; those still alive.

    A zombie counts as ended (its parent reaps it). Never sleeps in a loop: ``poll``
    returns when a pidfd becomes readable.
    """
    pending: dict[int, psutil.Process] = {}
    fds: list[int] = []
    try:
        for process in processes:
            try:
                fd = os.pidfd_open(process.pid)
            except ProcessLookupError:
                continue
            if not process.is_running():  # the pid was recycled between the find and the open
                os.close(fd)
                continue
            fds.append(fd)
            pending[fd] = process
        poller = select.poll()
        for fd in pending:
            poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + timeout_s
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for fd, _ in poller.poll(left * 1000):
                poller.unregister(fd)
                del pending[fd]
        return list(pending.values())
    finally:
        for fd in fds:
            os.close(fd)


def terminate(processes: list[psutil.Process], signum: int, timeout_s: float) -> list[psutil.Process]:
    """``signum`` to each, wait up to ``timeout_s``, then SIGKILL those left and wait for them; those killed."""
    signal_all(processes, signum)
    left = wait_gone(processes, timeout_s)
    if left:
        signal_all(left, signal.SIGKILL)
        wait_gone(left, timeout_s)
    return left


# A process forked by a group member while the group was being stopped is caught by the next look.
GROUP_ROUNDS = 3


def end_group(
    pgid: int, born_since: float, signum: int, timeout_s: float, also: Iterable[psutil.Process] = ()
) -> list[psutil.Process]:
    """Stop every process of group ``pgid`` (and ``also``): ``signum``, then SIGKILL; those that needed it.

    The group is looked at again after each round, so that what a member forked
    meanwhile does not outlive it; the later rounds SIGKILL at once.
    """
    extra = list(also)
    members = group_members(pgid, born_since)
    members += [p for p in extra if all(m.pid != p.pid for m in members)]
    killed = terminate(members, signum, timeout_s)
    for _ in range(GROUP_ROUNDS):
        rest = group_members(pgid, born_since)
        if not rest:
            break
        killed += terminate(rest, signal.SIGKILL, timeout_s)
    return killed


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (``/proc/PID/stat``); ``None`` if gone or a zombie.

    With the pid, it names one process within one boot (:func:`boot_id`; a pid
    reused later has another start), read without psutil: the cron actor names its daemon
    so at every start, where an idle daemon has no other use for psutil.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # After the command name in parentheses (which may hold anything, parentheses too):
    # field 3 is the state, field 22 the start time.
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return None if fields[0] == b"Z" else int(fields[19])
    except (IndexError, ValueError):
        return None


def boot_id() -> str:
    """This boot of the host, in short (the kernel's random boot id): a pid and start tick name a process within one."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip().replace("-", "")[:12]
    except OSError:
        return "unknown"


def group_exists(pgid: int) -> bool:
    """Whether any process is in group ``pgid`` (a null signal; no process scan)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def child_pids(pid: int, thread: int | None = None) -> list[int]:
    """The children of process ``pid`` (of its thread ``thread`` only, if given), from the kernel's lists.

    ``/proc/PID/task/TID/children`` holds the children each thread forked (or was
    given); none when the process is gone or cannot be read.
    """
    root = Path(f"/proc/{pid}/task")
    try:
        tasks = [root / str(thread)] if thread is not None else list(root.iterdir())
    except OSError:
        return []
    found: list[int] = []
    for task in tasks:
        try:
            found += (int(child) for child in (task / "children").read_text(encoding="ascii").split())
        except (OSError, ValueError):
            continue
    return found


def descendant_pids(pid: int, skip: Iterable[int] = (), *, main_thread_only: bool = False) -> list[int]:
    """The pids of ``pid``'s descendants, read from the kernel's children lists (no scan of every process).

    The processes ``skip`` names are left out, with their descendants. With
    ``main_thread_only``, ``pid``'s own children are those of its main thread only.
    """
    found: list[int] = []
    seen: set[int] = set(skip)
    pending = [child for child in child_pids(pid, pid if main_thread_only else None) if child not in seen]
    seen.update(pending)
    while pending:
        parent = pending.pop()
        found.append(parent)
        for child in child_pids(parent):
            if child not in seen:
                seen.add(child)
                pending.append(child)
    return found


def own_descendants(skip: Iterable[int] = ()) -> list[psutil.Process]:
    """This process's live descendants but those under ``skip`` (the services' own leaders).

    Cheaper than scanning every process: a subreaper finds there the escaped
    descendants of its services, which were given to it when their parents ended.
    The kernel gives an orphan to the subreaper's first live thread, its main
    thread (which runs as long as the daemon), so only that thread's children are
    read, not those of each actor's thread (a service's leader is the child of the
    thread that started it, and is skipped anyway).
    """
    import psutil  # noqa: PLC0415 - see the module's imports

    found: list[psutil.Process] = []
    for pid in descendant_pids(os.getpid(), skip, main_thread_only=True):
        with contextlib.suppress(psutil.Error):
            found.append(psutil.Process(pid))
    return found
