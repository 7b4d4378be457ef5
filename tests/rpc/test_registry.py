"""The registry without ZeroMQ: names, signature checks, describe, plugin loading."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytest
from rpc_helpers import make_settings

from nua.actors.directory import Directory
from nua.rpc import errors, plugins, registry
from nua.rpc.method_group import MethodGroup
from nua.rpc.registry import Registry, public
from nua.rpc.services import Services


class Sample(MethodGroup):
    prefix = "sample_"

    @public
    def typed(self, a: int, b: str = "x", *, flag: bool = False) -> str:
        """Doc of typed."""
        return f"{a}{b}{flag}"

    @public
    def loose(self, value: Any, maybe: dict[str, Any] | None = None) -> Any:
        return value

    @public
    def choice(self, mode: Literal["fast", "slow"]) -> str:
        return mode

    @public
    def varargs(self, *numbers: float, **named: Any) -> float:
        return sum(numbers)

    @public
    def only(self, x: int, /) -> int:
        return x

    def not_public(self) -> None:
        """Not marked: not served."""


@pytest.fixture
def services(tmp_path: Path) -> Services:
    return Services(make_settings(tmp_path), Directory())


@pytest.fixture
def reg(services: Services) -> Registry:
    services.registry.add_group(Sample(services))
    return services.registry


def test_names_are_prefix_plus_method(reg: Registry) -> None:
    assert reg.names() == ["sample_choice", "sample_loose", "sample_only", "sample_typed", "sample_varargs"]
    assert "sample_not_public" not in reg


@pytest.mark.parametrize(
    ("method", "args", "kwargs", "param"),
    [
        ("sample_typed", [], {}, "a"),
        ("sample_typed", [1, "b", True], {}, "got"),
        ("sample_typed", ["1"], {}, "a"),
        ("sample_typed", [True], {}, "a"),
        ("sample_typed", [1.5], {}, "a"),
        ("sample_typed", [], {"a": 1, "zzz": 2}, "zzz"),
        ("sample_typed", [], {"a": 1, "flag": "yes"}, "flag"),
        ("sample_loose", [1, [1]], {}, "maybe"),
        ("sample_choice", ["medium"], {}, "mode"),
        ("sample_varargs", [1, "x"], {}, None),
        ("sample_only", [], {"x": 1}, "x"),
    ],
)
def test_bad_params_are_invalid_params(reg: Registry, method: str, args: list, kwargs: dict, param: str | None) -> None:
    found = reg.get(method)
    assert found is not None
    if param is None:  # *args are not checked item by item: the method's own business
        found.check(args, kwargs)
        return
    with pytest.raises(errors.InvalidParamsError) as caught:
        found.check(args, kwargs)
    assert param in caught.value.message or caught.value.data.get("param") == param


@pytest.mark.parametrize(
    ("method", "args", "kwargs"),
    [
        ("sample_typed", [1], {}),
        ("sample_typed", [], {"a": 1, "b": "y", "flag": True}),
        ("sample_loose", [None, None], {}),
        ("sample_loose", [{"x": 1}, {"y": 2}], {}),
        ("sample_choice", ["fast"], {}),
        ("sample_varargs", [1, 2.5, 3], {}),
        ("sample_varargs", [], {"anything": 1}),
    ],
)
def test_good_params_pass(reg: Registry, method: str, args: list, kwargs: dict) -> None:
    found = reg.get(method)
    assert found is not None
    found.check(args, kwargs)
    assert found.function(*args, **kwargs) is not None or method == "sample_loose"


def test_describe(reg: Registry) -> None:
    info = reg.get("sample_typed").describe()
    assert info["signature"] == 'sample_typed(a: int, b: str = "x", flag: bool = false)'
    assert info["doc"] == "Doc of typed."
    assert info["params"][0] == {"name": "a", "kind": "positional_or_keyword", "type": "int", "required": True}
    assert info["params"][2]["default"] is False


def test_a_taken_name_adds_nothing_of_the_group(reg: Registry, services: Services) -> None:
    class Clash(MethodGroup):
        prefix = "sample_"

        @public
        def fresh(self) -> None: ...

        @public
        def typed(self) -> None: ...

    with pytest.raises(registry.DuplicateMethodError):
        reg.add_group(Clash(services))
    assert "sample_fresh" not in reg


def test_plugins_load_and_a_broken_one_is_skipped(services: Services) -> None:
    failed = plugins.load_plugins(
        services.registry, services, ["rpc_broken_plugin", "rpc_test_plugin", "no.such.module"], use_entry_points=False
    )
    assert set(failed) == {"rpc_broken_plugin", "no.such.module"}
    assert "broken on purpose" in failed["rpc_broken_plugin"]
    assert "subtract" in services.registry
    assert "slow_wait" in services.registry


def test_entry_point_plugins(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    class EntryPoint:
        def __init__(self, name: str, target: object) -> None:
            self.name, self.value, self._target = name, f"{name}:x", target

        def load(self) -> object:
            if isinstance(self._target, Exception):
                raise self._target
            return self._target

    points = [EntryPoint("good", Sample), EntryPoint("bad", RuntimeError("cannot load"))]
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: points if group == "nua.rpc" else [])
    failed = plugins.load_plugins(services.registry, services, [], use_entry_points=True)
    assert list(failed) == ["entry point bad (bad:x)"]
    assert "sample_typed" in services.registry


def test_builtins_with_the_original_names(services: Services) -> None:
    reg = plugins.build(services, use_entry_points=False)
    for name in ("test_add", "test_divide", "rpc_methods", "rpc_describe", "user_add", "user_count", "user_list",
                 "user_update", "user_delete", "user_delete_all", "setting_get", "setting_set", "setting_list",
                 "group_add", "group_list", "group_members", "sys_status", "sys_fault"):  # fmt: skip
        assert name in reg
    assert [p.name for p in reg.get("user_update").signature.parameters.values()] == ["id", "key", "value"]
    assert [p.name for p in reg.get("user_list").signature.parameters.values()] == ["request", "limit", "after"]


class KeywordOnly(MethodGroup):
    prefix = "kw_"

    @public
    def must(self, a: int, *, name: str) -> str:
        return f"{a}{name}"


POSITIONAL_CALLS: list[list[Any]] = [[], [1], ["1"], [1, "b"], [1, 2], [1, "b", True], [None], [1.5, 2.5], ["fast"]]


def _verdict(run: Callable[[], None]) -> tuple[str, Any] | None:
    try:
        run()
    except errors.InvalidParamsError as exc:
        return (exc.message, exc.data)
    return None


@pytest.mark.parametrize("args", POSITIONAL_CALLS, ids=repr)
def test_the_positional_fast_path_agrees_with_full_binding(reg: Registry, services: Services, args: list[Any]) -> None:
    reg.add_group(KeywordOnly(services))
    for name in reg.names():
        method = reg.get(name)
        assert method is not None
        fast = _verdict(lambda m=method: m.check(args, {}))
        full = _verdict(lambda m=method: m.check._check_binding(args, {}))
        assert fast == full, name


def test_a_required_keyword_only_param_is_still_required(services: Services) -> None:
    method = next(m for m in registry.methods_of(KeywordOnly(services)) if m.name == "kw_must")
    with pytest.raises(errors.InvalidParamsError) as caught:
        method.check([1], {})
    assert caught.value.data == {"param": "name"}
    method.check([1], {"name": "x"})
