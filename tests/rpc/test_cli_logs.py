"""``nua logs``' reading of a file: the last whole lines, and a follow across a rotation (no daemon)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nua.rpc import cli_logs


class StopFollowingError(Exception):
    """Ends a follow, as Ctrl-C would."""


def test_last_lines_are_whole_lines_and_a_line_being_written_is_left_for_the_follow(tmp_path: Path) -> None:
    path = tmp_path / "nua.log"
    path.write_bytes(b"one\ntwo\n\xff three\npartial")
    with path.open("rb") as file:
        assert cli_logs.last_lines(file, 2) == (["two", "\ufffd three"], len(b"one\ntwo\n\xff three\n"))
        assert cli_logs.last_lines(file, 0)[0] == []
        assert cli_logs.last_lines(file, 10)[0] == ["one", "two", "\ufffd three"]


def test_many_lines_are_read_back_block_by_block(tmp_path: Path) -> None:
    path = tmp_path / "nua.log"
    path.write_text("".join(f"line {n:06d} {'x' * 100}\n" for n in range(5000)))
    with path.open("rb") as file:
        lines, _ = cli_logs.last_lines(file, 1500)
    assert len(lines) == 1500
    assert lines[0].startswith("line 003500 ")
    assert lines[-1].startswith("line 004999 ")


def test_a_follow_prints_the_rest_of_a_rotated_file_then_the_new_one(tmp_path: Path) -> None:
    path = tmp_path / "nua.log"
    path.write_text("old 1\n")
    written: list[str] = []
    looks = iter(range(100))

    def look_again(_seconds: float) -> None:
        match next(looks):
            case 0:
                with path.open("a") as old:
                    old.write("old 2\nold 3 ")  # the daemon writes on; a partial line waits
            case 1:
                rotated = path.with_name("nua.log.1")
                path.rename(rotated)
                with rotated.open("a") as old:
                    old.write("end\nold 4\n")  # written before the daemon re-opened the name
            case 2:
                pass  # no file at the name yet: the follow waits for one
            case 3:
                path.write_text("new 1\n")
            case 4:
                path.write_text("")  # truncated in place (copytruncate): read again from its start
            case 5:
                with path.open("a") as new:
                    new.write("after truncation\n")
            case _:
                raise StopFollowingError

    file = path.open("rb")
    _, offset = cli_logs.last_lines(file, 1)
    with pytest.raises(StopFollowingError):
        cli_logs.follow(path, file, offset, cli_logs._Follow(written.append, look_again))
    assert "".join(written).splitlines() == ["old 2", "old 3 end", "old 4", "new 1", "after truncation"]
    assert file.closed
