"""The method registry: ``@public`` methods of groups, each group a class with a name prefix.

A method's RPC name is its group's prefix plus its Python name (``test_`` +
``add``). Its signature is the contract: the gateway checks each call's params
against it (count, names, and the JSON types its annotations name) and answers
-32602 before running anything. ``@public`` only marks a function, never wraps
it, so that the signature seen here is the one written.

The registry is a leaf: it knows a group only as an object with a ``prefix`` and
marked methods. The gateway fills it (:func:`nua.rpc.plugins.build`) with the
built-in groups (:mod:`nua.rpc.methods`) and the plugins; groups derive from
:class:`nua.rpc.method_group.MethodGroup`.
"""

from __future__ import annotations

import functools
import inspect
import json
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, TypeVar, overload

import pykka

from nua.roles import ROLES, Role, role_named
from nua.rpc.errors import InvalidParamsError, shown

F = TypeVar("F", bound=Callable[..., Any])


RoleName = Literal["reader", "operator", "admin"]


@dataclass(frozen=True)
class _Public:
    offload: bool
    system: bool
    role: Role | None
    changes: bool


@overload
def public(function: F) -> F: ...
@overload
def public(
    *, offload: bool = False, system: bool = False, role: RoleName | None = None, changes: bool = False
) -> Callable[[F], F]: ...
def public(
    function: F | None = None,
    *,
    offload: bool = False,
    system: bool = False,
    role: RoleName | None = None,
    changes: bool = False,
) -> F | Callable[[F], F]:
    """Mark a method of a :class:`MethodGroup` as callable over RPC.

    ``role`` is the least role a caller's key must hold (``reader``, ``operator``,
    ``admin``; see :mod:`nua.roles`): the gateway checks it before the call. A
    method that declares none is denied to every caller (default deny): a plugin
    cannot expose a method by forgetting to say who may call it. ``changes=True``
    says that the method changes state (what an audit trail records).

    A method runs in the gateway's I/O thread and must be quick: it returns a
    JSON value, or the future of an ``ask`` to the actor that does the work. With
    ``offload=True`` it runs in a small thread pool instead, for work that is slow
    but releases the GIL (hashing a password) before it asks an actor.

    ``system=True`` is for the daemon's own cheap, read-only calls (status,
    introspection): they never wait behind application work. Such a method is
    exempt from the global in-flight bound (not from the per-client one), and
    when offloaded runs in a pool of its own.
    """

    needed = None if role is None else role_named(role)
    if role is not None and needed is None:
        msg = f"@public(role={role!r}): a role is one of {', '.join(ROLES)}"
        raise ValueError(msg)

    def mark(func: F) -> F:
        func.__nua_public__ = _Public(offload, system, needed, changes)  # type: ignore[attr-defined]
        return func

    return mark(function) if function is not None else mark


class Group(Protocol):
    """What the registry needs of a method group: its name prefix (its methods are found by :func:`public`)."""

    prefix: ClassVar[str]


# -- parameter checks -------------------------------------------------------------------

TypeCheck = Callable[[Any], bool]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_SIMPLE: dict[Any, tuple[TypeCheck, str]] = {
    int: (_is_int, "an integer"),
    float: (_is_number, "a number"),
    str: (lambda v: isinstance(v, str), "a string"),
    bool: (lambda v: isinstance(v, bool), "a boolean"),
    list: (lambda v: isinstance(v, list), "an array"),
    tuple: (lambda v: isinstance(v, list), "an array"),
    Sequence: (lambda v: isinstance(v, list), "an array"),
    dict: (lambda v: isinstance(v, dict), "an object"),
    Mapping: (lambda v: isinstance(v, dict), "an object"),
    type(None): (lambda v: v is None, "null"),
    None: (lambda v: v is None, "null"),
}


def _type_check(annotation: Any) -> tuple[TypeCheck, str] | None:  # noqa: PLR0911 - one return per kind of annotation
    """A check of a JSON value against ``annotation``, or ``None`` when anything goes."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return None
    if annotation in _SIMPLE:
        return _SIMPLE[annotation]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        checks = [_type_check(arg) for arg in typing.get_args(annotation)]
        if any(check is None for check in checks):
            return None
        known = [check for check in checks if check is not None]
        return (lambda v: any(check(v) for check, _ in known), " or ".join(name for _, name in known))
    if origin is Literal:
        allowed = typing.get_args(annotation)
        return (lambda v: v in allowed and type(v) in {type(a) for a in allowed}, f"one of {list(allowed)}")
    if origin is not None and origin in _SIMPLE:
        return _SIMPLE[origin]
    return None  # an annotation with no JSON counterpart: the method checks for itself


@dataclass(frozen=True)
class _Param:
    name: str
    positional: bool
    required: bool
    check: tuple[TypeCheck, str] | None


class ParamCheck:
    """Checks a call's ``args`` or ``kwargs`` against a signature, raising -32602 with what is wrong."""

    def __init__(self, method: str, signature: inspect.Signature, hints: Mapping[str, Any]) -> None:
        self.method = method
        self.params: list[_Param] = []
        self.var_positional = False
        self.var_keyword = False
        kinds = inspect.Parameter
        for param in signature.parameters.values():
            if param.kind is kinds.VAR_POSITIONAL:
                self.var_positional = True
            elif param.kind is kinds.VAR_KEYWORD:
                self.var_keyword = True
            else:
                self.params.append(
                    _Param(
                        name=param.name,
                        positional=param.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD),
                        required=param.default is kinds.empty,
                        check=_type_check(hints.get(param.name, param.annotation)),
                    )
                )
        self.positional = [p for p in self.params if p.positional]
        # Positional-only parameters cannot be named in a call.
        positional_only = {p.name for p in signature.parameters.values() if p.kind is kinds.POSITIONAL_ONLY}
        self.by_name = {p.name: p for p in self.params if p.name not in positional_only}
        # Most calls give positional params only, all the required ones and no more:
        # those need the type checks alone (``None``: some required param is keyword-only).
        required = [p for p in self.params if p.required]
        self._positional_range: range | None = (
            range(len(required), len(self.positional) + 1) if all(p.positional for p in required) else None
        )

    def __call__(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        if not kwargs and self._positional_range is not None and len(args) in self._positional_range:
            self._check_types(args)
            return
        self._check_binding(args, kwargs)

    def _check_types(self, args: Sequence[Any]) -> None:
        for param, value in zip(self.positional, args, strict=False):
            if param.check is not None and not param.check[0](value):
                self._wrong_type(param)

    def _check_binding(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        if len(args) > len(self.positional) and not self.var_positional:
            self._fail(
                f"{self.method} takes {self._count()} positional argument(s), got {len(args)}",
                expected=len(self.positional),
                got=len(args),
            )
        given: dict[str, Any] = {p.name: value for p, value in zip(self.positional, args, strict=False)}
        for name, value in kwargs.items():
            if name not in self.by_name:
                if self.var_keyword:
                    continue
                known = ", ".join(p.name for p in self.params) or "none"
                self._fail(f"{self.method} has no parameter {shown(name)!r} (parameters: {known})", param=shown(name))
            given[name] = value
        for param in self.params:
            if param.name not in given:
                if param.required:
                    self._fail(f"{self.method} is missing argument {param.name!r}", param=param.name)
                continue
            if param.check is not None and not param.check[0](given[param.name]):
                self._wrong_type(param)

    def _wrong_type(self, param: _Param) -> typing.NoReturn:
        expected = param.check[1] if param.check is not None else "any"
        self._fail(f"{self.method}: argument {param.name!r} must be {expected}", param=param.name, expected=expected)

    def _count(self) -> str:
        required = sum(1 for p in self.positional if p.required)
        total = len(self.positional)
        return str(total) if required == total else f"{required} to {total}"

    @staticmethod
    def _fail(message: str, **data: Any) -> typing.NoReturn:
        raise InvalidParamsError(message, data)


# -- methods and the registry -----------------------------------------------------------


@dataclass(frozen=True)
class Method:
    """One callable RPC method: its name, bound function, parameter check and doc."""

    name: str
    function: Callable[..., Any]
    offload: bool
    signature: inspect.Signature
    check: ParamCheck
    doc: str
    # A cheap read-only call of the daemon itself: its own lane (see :func:`public`).
    system: bool = False
    # The least role a caller needs; None: declared none, denied to everyone.
    role: Role | None = None
    # Whether a call changes state.
    changes: bool = False
    # How an audit record shows a call's params (by name) before its redaction by name: the group's
    # ``audited_params``, for params holding secrets no name gives away (a job's nested call params).
    audited: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    @functools.cached_property
    def positional_names(self) -> tuple[str, ...] | None:
        """The names positional params take, in order; ``None`` when the signature has ``*args``.

        Worked out once per method: a call's audit entry names its positional params by it.
        """
        names = []
        for param in self.signature.parameters.values():
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                return None
            if param.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
                names.append(param.name)
        return tuple(names)

    def describe(self) -> dict[str, Any]:
        """What ``rpc_describe`` answers: the signature, each parameter and the doc."""
        params = []
        for param in self.signature.parameters.values():
            entry: dict[str, Any] = {"name": param.name, "kind": param.kind.name.lower()}
            if param.annotation is not inspect.Parameter.empty:
                entry["type"] = _annotation_text(param.annotation)
            entry["required"] = param.default is inspect.Parameter.empty and param.kind not in (
                inspect.Parameter.VAR_POSITIONAL,
                inspect.Parameter.VAR_KEYWORD,
            )
            if param.default is not inspect.Parameter.empty:
                entry["default"] = param.default if _is_json_scalar(param.default) else repr(param.default)
            params.append(entry)
        return {
            "name": self.name,
            "signature": f"{self.name}({', '.join(_param_text(param) for param in params)})",
            "params": params,
            "doc": self.doc,
            "role": None if self.role is None else self.role.label,
            "changes": self.changes,
        }


def _param_text(param: dict[str, Any]) -> str:
    """A parameter as a caller writes it: ``name: type``, and ``= default`` when it may be left out.

    The signature a client sees: what the Python function returns (a future) is not its business.
    """
    text = f"{param['name']}: {param['type']}" if "type" in param else str(param["name"])
    if param["required"] or "default" not in param:
        return text
    return f"{text} = {json.dumps(param['default'])}"


def _annotation_text(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _is_json_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


class DuplicateMethodError(ValueError):
    """Two groups define the same RPC name."""


def _resolved(signature: inspect.Signature, hints: Mapping[str, Any]) -> inspect.Signature:
    """``signature`` with its string annotations resolved; a future's return type means "a value later"."""
    params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()]
    returns = hints.get("return", signature.return_annotation)
    if isinstance(returns, type) and issubclass(returns, pykka.Future):
        returns = inspect.Signature.empty
    return signature.replace(parameters=params, return_annotation=returns)


def methods_of(group: Group) -> list[Method]:
    """The :func:`public` methods of ``group``, named with its prefix."""
    found = []
    for attr, raw in inspect.getmembers(type(group), inspect.isfunction):
        marker = getattr(raw, "__nua_public__", None)
        if not isinstance(marker, _Public):
            continue
        name = f"{group.prefix}{attr}"
        bound = getattr(group, attr)
        hints = typing.get_type_hints(raw)
        signature = _resolved(inspect.signature(bound), hints)
        found.append(
            Method(
                name=name,
                function=bound,
                offload=marker.offload,
                signature=signature,
                check=ParamCheck(name, signature, hints),
                doc=inspect.cleandoc(raw.__doc__ or ""),
                system=marker.system,
                role=marker.role,
                changes=marker.changes,
                audited=getattr(group, "audited_params", None),
            )
        )
    return found


class Registry:
    """RPC name -> :class:`Method`, filled once at the gateway's start."""

    def __init__(self) -> None:
        self._methods: dict[str, Method] = {}

    def add_group(self, group: Group) -> list[str]:
        """Add every public method of ``group``; all or nothing when a name is taken."""
        methods = methods_of(group)
        taken = [m.name for m in methods if m.name in self._methods]
        if taken:
            msg = f"{type(group).__name__}: method(s) already registered: {', '.join(taken)}"
            raise DuplicateMethodError(msg)
        for method in methods:
            self._methods[method.name] = method
        return [m.name for m in methods]

    def remove(self, names: Iterable[str]) -> None:
        """Take these methods out again (a plugin that failed half-way)."""
        for name in names:
            self._methods.pop(name, None)

    def get(self, name: str) -> Method | None:
        return self._methods.get(name)

    def names(self) -> list[str]:
        return sorted(self._methods)

    def __len__(self) -> int:
        return len(self._methods)

    def __contains__(self, name: object) -> bool:
        return name in self._methods


__all__ = [
    "DuplicateMethodError",
    "Group",
    "Method",
    "ParamCheck",
    "Registry",
    "RoleName",
    "methods_of",
    "public",
]
