"""Workflows of SPEC §9 (resume data, idempotency keys, child workflows, list routes), registered
through ``tests/workflows.py`` so that worker processes find them too."""

from __future__ import annotations

import random
import time
from typing import Any

from hephaestus_django.core import (
    Child,
    ChildrenStep,
    Done,
    Ok,
    Retry,
    Step,
    Unique,
    WaitForEvent,
    Workflow,
    route,
)


# ---- two waits for the same event (the redelivered webhook) -------------------------------
class KFirst(WaitForEvent):
    pass


class KSecond(WaitForEvent):
    pass


class TwoWaitFlow(Workflow):
    name = "tests.TwoWaitFlow"
    unique = Unique(key="twowait")
    start_step = (KFirst, {"event_name": "ping"})
    transitions = {(KFirst, "received"): (KSecond, {"event_name": "ping"}), (KSecond, "received"): Done}


# ---- a parent with one child per parcel ----------------------------------------------------------------
class CParcelGate(WaitForEvent):
    """A parcel waits for its carrier's ``delivered`` event."""


class ParcelChild(Workflow):
    name = "tests.ParcelChild"
    unique = Unique(key="cparcel")
    start_step = (CParcelGate, {"event_name": "delivered"})
    transitions = {(CParcelGate, "received"): Done}


class CShip(ChildrenStep):
    retry = Retry(max_attempts=2, backoff="constant", base=0)

    def children(self, instance: Any, config: dict[str, Any], context: Any) -> list[Child]:
        return [Child(ParcelChild, p, context={"parcel": p}) for p in context.initial.get("parcels", [])]


class CInvoice(Step):
    events = ("sent",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        children = context.steps["c_ship"]["children"]
        return Ok("sent", {"parcels": [c["id"] for c in children]})


class CRefund(Step):
    events = ("refunded",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("refunded", {"failed": [c["id"] for c in context.steps["c_ship"]["children"]
                                          if c["status"] != "completed"]})


class ParcelParent(Workflow):
    name = "tests.ParcelParent"
    unique = Unique(key="cparent")
    start_step = CShip
    transitions = {(CShip, "completed"): CInvoice, (CShip, "failed"): CRefund,
                   (CInvoice, "sent"): Done, (CRefund, "refunded"): Done}


class GGate(WaitForEvent):
    pass


class GatedParent(Workflow):
    """Waits for ``go`` before it starts its children (tests race a cancel against the start)."""

    name = "tests.GatedParent"
    unique = Unique(key="gated")
    start_step = (GGate, {"event_name": "go"})
    transitions = {(GGate, "received"): CShip, (CShip, "completed"): CInvoice, (CShip, "failed"): CRefund,
                   (CInvoice, "sent"): Done, (CRefund, "refunded"): Done}


# ---- children that run on their own (queue workers) ----------------------------------------------------------
class QWork(Step):
    events = ("worked",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        time.sleep(random.uniform(0, 0.02))  # noqa: S311 - spreads when siblings finish
        return Ok("worked", {"n": context.initial["n"]})


class QCheck(Step):
    events = ("checked",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("checked", {"double": context.steps["q_work"]["n"] * 2})


class QuickChild(Workflow):
    name = "tests.QuickChild"
    unique = Unique(key="qchild")
    start_step = QWork
    transitions = {(QWork, "worked"): QCheck, (QCheck, "checked"): Done}


class QFan(ChildrenStep):
    def children(self, instance: Any, config: dict[str, Any], context: Any) -> list[Child]:
        value = instance.id.split("::")[1]
        return [Child(QuickChild, f"{value}-{n}", context={"n": n}) for n in range(context.initial["children"])]


class QSum(Step):
    events = ("summed",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("summed", {"total": sum(c["steps"]["q_check"]["double"]
                                          for c in context.steps["q_fan"]["children"])})


class QuickParent(Workflow):
    name = "tests.QuickParent"
    unique = Unique(key="qparent")
    start_step = QFan
    transitions = {(QFan, "completed"): QSum, (QFan, "failed"): Done, (QSum, "summed"): Done}


# ---- a route that fans out to a list -----------------------------------------------------------------------------
class LTriage(Step):
    events = ("routed",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return "routed"


class LBranch(Step):
    events = ("done",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("done", {"config": config})


class LAudit(LBranch):
    pass


class LRefund(LBranch):
    pass


class LNotify(LBranch):
    pass


class LJoin(Step):
    events = ("joined",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("joined", {"seen": sorted(k for k in context.steps if k.startswith("l_") and k != "l_join")})


class ListRouteFlow(Workflow):
    name = "tests.ListRouteFlow"
    unique = Unique(key="lroute")
    start_step = LTriage
    transitions = {(LAudit, "done"): LJoin, (LRefund, "done"): LJoin, (LNotify, "done"): LJoin,
                   (LJoin, "joined"): Done}

    @route(LTriage, "routed", targets=[LAudit, LRefund, (LNotify, {"channel": "sms"})])
    def pick(context: Any) -> Any:
        wanted = {"audit": LAudit, "refund": LRefund, "notify": LNotify}
        return [wanted[name] for name in context.initial["branches"]]


# ---- children and time (pause, compensation): tests/test_compose_time.py ------------------------------------
class UReleaseBudget(Step):
    """Compensates UBudget."""

    events = ("released",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("released", {"budget": context.steps["u_budget"]["budget"]})


class UBudget(Step):
    events = ("reserved",)
    compensate = UReleaseBudget

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("reserved", {"budget": 100})


class CompensatedParent(Workflow):
    """Reserves a budget (compensated), then ships one child per parcel."""

    name = "tests.CompensatedParent"
    unique = Unique(key="uparent")
    start_step = UBudget
    transitions = {(UBudget, "reserved"): CShip, (CShip, "completed"): CInvoice, (CShip, "failed"): CRefund,
                   (CInvoice, "sent"): Done, (CRefund, "refunded"): Done}
