"""The settings the benchmarks write load: a bench that cannot start its daemon measures nothing."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

from nua import settings

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _bench(name: str) -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.append(str(BENCH))  # last: a bench script never shadows a module of the standard library
    return importlib.import_module(name)


def test_the_events_bench_config_loads_with_both_debug_keys(tmp_path: Path) -> None:
    config = _bench("events").write_config(tmp_path, "tcp://127.0.0.1:5555", 5)
    loaded = settings.load(config, {})
    assert loaded.debug.test_methods
    assert loaded.debug.allow_fault_injection
    assert loaded.supervisor.max_restarts == 15


def test_the_http_bench_config_loads_with_http_and_its_service(tmp_path: Path) -> None:
    loaded = settings.load(_bench("http_server").write_config(tmp_path, "tcp://127.0.0.1:5555"), {})
    assert loaded.http.port == 0
    assert [service.name for service in loaded.services] == ["sleeper"]
    assert loaded.debug.test_methods


@pytest.mark.parametrize("level", ["info", "warning"])
def test_the_rpc_bench_config_takes_extra_keys_into_its_sections(tmp_path: Path, level: str) -> None:
    extra = {"server": {"log_level": level}, "rpc": {"plugins": ["audit_bench_plugin"]}}
    loaded = settings.load(_bench("rpc").write_config(tmp_path, "tcp://127.0.0.1:5555", extra=extra), {})
    assert loaded.server.log_level == level
    assert loaded.server.pid_file == f"{tmp_path}/run/nua.pid"
    assert loaded.debug.test_methods  # what the bench's readiness probe (test_add) needs


def test_the_audit_bench_config_loads_with_its_plugin_and_the_test_methods(tmp_path: Path) -> None:
    config = tmp_path / "nua.toml"
    config.write_text(_bench("audit").config_text(tmp_path, "tcp://127.0.0.1:5555", "info"), encoding="utf-8")
    loaded = settings.load(config, {})
    assert loaded.rpc.plugins == ["audit_bench_plugin"]
    assert loaded.debug.test_methods  # what the bench's readiness probe (test_add) needs
