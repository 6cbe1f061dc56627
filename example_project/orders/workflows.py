"""The demo's workflows: an order fulfilment flow and friends, one feature each.

- ``OrderFulfilment``: branching (valid/invalid), a payment with retries, fan-out/fan-in
  (reserve stock and notify the customer, then pack), an external event (the carrier's
  pickup) with a timeout, and a one-day timer before closing.
- ``SupportTicket``: dynamic routing with ``@route``.
- ``CustomerOnboarding``: a versioned workflow (v1 and v2).
- Compensation: when an order fails after its payment (a parcel found damaged while packing),
  ``ReleaseStock`` and ``RefundPayment`` undo what was done, last first.
- ``NightlyStockReport``: a schedule (every night at 02:00, Paris time).
"""

from __future__ import annotations

from hephaestus_django import (
    Done,
    Error,
    Ok,
    Retry,
    Schedule,
    Step,
    Unique,
    VersionedWorkflow,
    Wait,
    WaitForEvent,
    Workflow,
    route,
)


class ValidateOrder(Step):
    """Valid when the order has items."""

    events = ("valid", "invalid")

    def execute(self, instance, config, context):
        items = context.initial.get("items", [])
        if items:
            return Ok("valid", {"item_count": len(items), "total": sum(i.get("price", 0) for i in items)})
        return Ok("invalid", {"reason": "the order has no items"})


class RefundPayment(Step):
    """Compensates ChargePayment: gives the money back."""

    events = ("refunded",)

    def execute(self, instance, config, context):
        return Ok("refunded", {"amount": context.steps["charge_payment"]["charged"]})


class ReleaseStock(Step):
    """Compensates ReserveStock: puts the items back on the shelf."""

    events = ("released",)

    def execute(self, instance, config, context):
        return Ok("released", {"warehouse": context.steps["reserve_stock"]["warehouse"]})


class ChargePayment(Step):
    """Fails (and is retried) while the card is declined."""

    events = ("paid",)
    compensate = RefundPayment
    retry = Retry(max_attempts=3, backoff="exponential", base=2.0, max_backoff=30.0)

    def execute(self, instance, config, context):
        if context.initial.get("card") == "declined":
            return Error("card declined by the bank")
        return Ok("paid", {"charged": context.steps["validate_order"]["total"]}, {"payment_provider": "demo-pay"})


class ReserveStock(Step):
    events = ("reserved",)
    compensate = ReleaseStock

    def execute(self, instance, config, context):
        return Ok("reserved", {"warehouse": config.get("warehouse", "main")})


class NotifyCustomer(Step):
    events = ("sent",)

    def execute(self, instance, config, context):
        return Ok("sent", {"channel": "email"})


class PackOrder(Step):
    """The join: runs once both branches have finished. A damaged parcel fails the order, whose
    compensations then release the stock and refund the payment."""

    events = ("packed",)

    def execute(self, instance, config, context):
        if context.initial.get("damaged"):
            return Error("the parcel is damaged")
        return Ok("packed", {"parcels": 1})


class AwaitPickup(WaitForEvent):
    """Waits for the carrier's ``picked_up`` event, for at most two days."""


class CloseOrder(Step):
    events = ("closed",)

    def execute(self, instance, config, context):
        return "closed"


class RejectOrder(Step):
    events = ("rejected",)

    def execute(self, instance, config, context):
        return "rejected"


class OrderFulfilment(Workflow):
    unique = Unique(key="order")
    tags = ["demo", "orders"]
    metadata = {"team": "fulfilment"}
    start_step = ValidateOrder
    transitions = {
        (ValidateOrder, "valid"): ChargePayment,
        (ValidateOrder, "invalid"): RejectOrder,
        (ChargePayment, "paid"): [(ReserveStock, {"warehouse": "east"}), NotifyCustomer],
        (ReserveStock, "reserved"): PackOrder,
        (NotifyCustomer, "sent"): PackOrder,
        (PackOrder, "packed"): (AwaitPickup, {"event_name": "picked_up", "timeout": 2 * 86400}),
        (AwaitPickup, "received"): (Wait, {"duration": 1, "unit": "day"}),
        (AwaitPickup, "timeout"): CloseOrder,
        (Wait, "timeout"): CloseOrder,
        (CloseOrder, "closed"): Done,
        (RejectOrder, "rejected"): Done,
    }


class Triage(Step):
    events = ("routed",)

    def execute(self, instance, config, context):
        return Ok("routed", {"priority": context.initial.get("priority", "normal")})


class FastTrack(Step):
    events = ("done",)

    def execute(self, instance, config, context):
        return Ok("done", {"sla_hours": 4})


class StandardQueue(Step):
    events = ("done",)

    def execute(self, instance, config, context):
        return Ok("done", {"sla_hours": 48})


class SupportTicket(Workflow):
    unique = Unique(key="ticket")
    tags = ["demo", "support"]
    start_step = Triage
    transitions = {(FastTrack, "done"): Done, (StandardQueue, "done"): Done}

    @route(Triage, "routed", targets=[FastTrack, StandardQueue])
    def triage(context):
        return FastTrack if context.initial.get("priority") == "high" else StandardQueue


class CreateAccount(Step):
    events = ("created",)

    def execute(self, instance, config, context):
        return Ok("created", {"username": context.initial.get("email", "").split("@")[0]})


class SendWelcome(Step):
    events = ("sent",)

    def execute(self, instance, config, context):
        return "sent"


class VerifyEmail(WaitForEvent):
    """v2 only: waits for the customer to click the link."""


class CustomerOnboardingV1(Workflow):
    name = "orders.CustomerOnboarding.v1"
    version = 1
    unique = Unique(key="customer")
    start_step = CreateAccount
    transitions = {(CreateAccount, "created"): SendWelcome, (SendWelcome, "sent"): Done}


class CustomerOnboardingV2(Workflow):
    name = "orders.CustomerOnboarding.v2"
    version = 2
    unique = Unique(key="customer")
    start_step = CreateAccount
    transitions = {
        (CreateAccount, "created"): (VerifyEmail, {"event_name": "email_verified"}),
        (VerifyEmail, "received"): SendWelcome,
        (SendWelcome, "sent"): Done,
    }


class CustomerOnboarding(VersionedWorkflow):
    name = "orders.CustomerOnboarding"
    unique = Unique(key="customer")
    tags = ["demo", "versioned"]
    versions = {1: CustomerOnboardingV1, 2: CustomerOnboardingV2}
    current = 2

    @classmethod
    def version_for(cls, versions, context):
        return 1 if context.get("legacy") else None


class CountStock(Step):
    events = ("counted",)

    def execute(self, instance, config, context):
        return Ok("counted", {"night_of": context.initial["scheduled_for"][:10]})


class NightlyStockReport(Workflow):
    """Started by ``hephaestus_worker`` every night at 02:00 (Paris): ``report::stock-20250101``..."""

    unique = Unique(key="report")
    tags = ["demo", "scheduled"]
    schedules = [Schedule("0 2 * * *", value="stock-{tick:%Y%m%d}", timezone="Europe/Paris", name="nightly")]
    start_step = CountStock
    transitions = {(CountStock, "counted"): Done}
