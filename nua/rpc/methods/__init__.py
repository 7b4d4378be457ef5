"""The built-in method groups, with the original orchestrator's names and signatures."""

from __future__ import annotations

from nua.rpc.method_group import MethodGroup
from nua.rpc.methods.audit import AuditMethods
from nua.rpc.methods.events import EventsMethods
from nua.rpc.methods.group import GroupMethods
from nua.rpc.methods.key import KeyMethods
from nua.rpc.methods.rpc import RpcMethods
from nua.rpc.methods.service import ServiceMethods
from nua.rpc.methods.setting import SettingMethods
from nua.rpc.methods.sys import FaultMethods, SysMethods
from nua.rpc.methods.test import TestMethods
from nua.rpc.methods.user import UserMethods

BUILTIN_GROUPS: tuple[type[MethodGroup], ...] = (
    TestMethods,
    RpcMethods,
    UserMethods,
    GroupMethods,
    SettingMethods,
    KeyMethods,
    AuditMethods,
    EventsMethods,
    ServiceMethods,
    SysMethods,
    FaultMethods,
)

__all__ = ["BUILTIN_GROUPS"]
