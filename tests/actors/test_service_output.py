"""A service's output: read without ever blocking the writer, rotated at line boundaries, reopened."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest
from servicekit import PYTHON, WAIT_S

from nua.actors.process_loop import ProcessLoop
from nua.actors.service_log import ServiceLog, tail


@pytest.fixture
def loop() -> ProcessLoop:
    made = ProcessLoop()
    made.start()
    yield made  # type: ignore[misc]
    made.stop()


def run(loop: ProcessLoop, output: ServiceLog, code: str) -> int:
    """Run ``code`` under the loop; its exit code once every byte it wrote is in ``output``."""
    exited: list[int] = []
    ended = threading.Event()
    done = threading.Event()

    def on_exit(status: int) -> None:
        exited.append(status)
        done.set()

    loop.spawn(
        lambda: subprocess.Popen(
            [PYTHON, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        ),
        loop.open_log(output),
        on_exit,
        ended.set,
    )
    assert done.wait(WAIT_S * 3), "the writer stalled"
    assert ended.wait(WAIT_S)
    return exited[0]


def files(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}*"), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)


def test_ten_megabytes_without_a_newline_never_block_the_writer(loop: ProcessLoop, tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    code = "import sys; sys.stdout.buffer.write(b'x' * 10_000_000); sys.stdout.flush(); sys.stderr.write('end\\n')"
    assert run(loop, ServiceLog(path, max_bytes=1024 * 1024, backups=3), code) == 0
    # One line longer than a file stays whole in one file.
    assert path.stat().st_size == 10_000_004
    assert not path.with_name("big.log.1").exists()


def test_rotation_under_a_fast_writer_neither_loses_nor_duplicates_a_line(loop: ProcessLoop, tmp_path: Path) -> None:
    path = tmp_path / "fast.log"
    lines = 200_000
    code = f"import sys\nfor i in range({lines}): sys.stdout.write(f'line {{i}} ' + 'y' * (i % 50) + '\\n')"
    assert run(loop, ServiceLog(path, max_bytes=256 * 1024, backups=100), code) == 0
    written = files(path)
    assert len(written) > 10
    seen = []
    for part in written:
        data = part.read_bytes()
        assert data.endswith(b"\n")  # every file ends at a line boundary
        assert len(data) <= 256 * 1024
        seen += [int(line.split()[1]) for line in data.decode().splitlines()]
    assert seen == list(range(lines))


def test_backups_beyond_the_count_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "few.log"
    output = ServiceLog(path, max_bytes=1024, backups=2)
    for i in range(100):
        output.write(f"{i:09d} {'z' * 90}\n".encode())
    output.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["few.log", "few.log.1", "few.log.2"]
    assert tail(path, 3, backups=2)[-1].startswith("000000099")
    assert len(tail(path, 25, backups=2)) == 25


def test_reopen_after_an_external_rotation(loop: ProcessLoop, tmp_path: Path) -> None:
    path = tmp_path / "moved.log"
    output = loop.open_log(ServiceLog(path, max_bytes=1024 * 1024, backups=1))
    assert run(loop, output, "print('before')") == 0
    path.rename(tmp_path / "moved.log.old")
    loop.reopen_logs()
    assert run(loop, output, "print('after')") == 0
    assert path.read_text() == "after\n"
    assert (tmp_path / "moved.log.old").read_text() == "before\n"
