"""The demo's workflows: an order fulfilment flow and friends, one feature each.

- ``OrderFulfilment``: branching (valid/invalid), a payment with retries, fan-out/fan-in
  (reserve stock and notify the customer, then pack), an external event (the carrier's
  pickup) with a timeout, and a one-day timer before closing.
- ``SupportTicket``: dynamic routing with ``@route``.
- ``CustomerOnboarding``: a versioned workflow (v1 and v2).
- Compensation: when an order fails after its payment (a parcel found damaged while packing),
  ``ReleaseStock`` and ``RefundPayment`` undo what was done, last first.
- ``NightlyStockReport``: a schedule (every night at 02:00, Paris time).
- ``ParcelOrder``: events that carry data and workflows that compose. The payment provider's
  webhook resumes it with the charge as ``data`` and its event id as the idempotency key (a
  redelivered webhook changes nothing); a route fans out, at run time, to the branches the order
  needs; ``ShipParcels`` starts one ``ParcelShipment`` child workflow per parcel, and the order
  goes on when the last parcel is delivered.
"""

from __future__ import annotations

from hephaestus_django import (
    Child,
    ChildrenStep,
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
# ---- resume data, idempotency keys, child workflows and a fan-out chosen at run time -------------------
class ShipParcel(Step):
    """Hands one parcel to the carrier."""

    events = ("shipped",)

    def execute(self, instance, config, context):
        return Ok("shipped", {"tracking": f"TRK-{instance.id.split('::')[1]}"})


class AwaitDelivery(WaitForEvent):
    """Waits for the carrier's ``delivered`` webhook (its data: who signed for it)."""


class ParcelShipment(Workflow):
    """One parcel of a ``ParcelOrder``: a child workflow."""

    unique = Unique(key="parcel")
    tags = ["demo", "child"]
    start_step = ShipParcel
    transitions = {
        (ShipParcel, "shipped"): (AwaitDelivery, {"event_name": "delivered"}),
        (AwaitDelivery, "received"): Done,
    }


class AwaitPayment(WaitForEvent):
    """Waits for the payment provider's ``payment_succeeded`` webhook, for at most a day."""


class PlanFulfilment(Step):
    events = ("planned",)

    def execute(self, instance, config, context):
        return Ok("planned", {"parcels": len(context.initial.get("parcels", []))})


class ShipParcels(ChildrenStep):
    """One ``ParcelShipment`` per parcel; completes when the last one is delivered."""

    def children(self, instance, config, context):
        order = instance.id.split("::")[1]
        return [Child(ParcelShipment, f"{order}-{number}", context={"order": instance.id, "items": items})
                for number, items in enumerate(context.initial.get("parcels", []), start=1)]


class WrapGift(Step):
    events = ("wrapped",)

    def execute(self, instance, config, context):
        return Ok("wrapped", {"note": context.initial.get("gift_note", "")})


class EmailReceipt(Step):
    events = ("sent",)

    def execute(self, instance, config, context):
        charge = context.steps["await_payment"]  # the webhook's data
        return Ok("sent", {"charge_id": charge.get("charge_id"), "amount": charge.get("amount")})


class OpenClaim(Step):
    """A parcel was lost (its shipment failed or was cancelled): open a claim with the carrier."""

    events = ("opened",)

    def execute(self, instance, config, context):
        lost = [c["id"] for c in context.steps["ship_parcels"]["children"] if c["status"] != "completed"]
        return Ok("opened", {"lost": lost})


class CompleteOrder(Step):
    """The join: runs once every branch the route took has finished."""

    events = ("completed",)

    def execute(self, instance, config, context):
        return Ok("completed", {"branches": sorted(context.steps)})


class CancelUnpaid(Step):
    events = ("cancelled",)

    def execute(self, instance, config, context):
        return "cancelled"


class ParcelOrder(Workflow):
    unique = Unique(key="porder")
    tags = ["demo", "orders", "children"]
    start_step = (AwaitPayment, {"event_name": "payment_succeeded", "timeout": 86400})
    transitions = {
        (AwaitPayment, "received"): PlanFulfilment,
        (AwaitPayment, "timeout"): CancelUnpaid,
        (ShipParcels, "completed"): CompleteOrder,
        (ShipParcels, "failed"): OpenClaim,
        (OpenClaim, "opened"): CompleteOrder,
        (WrapGift, "wrapped"): CompleteOrder,
        (EmailReceipt, "sent"): CompleteOrder,
        (CompleteOrder, "completed"): Done,
        (CancelUnpaid, "cancelled"): Done,
    }

    @route(PlanFulfilment, "planned", targets=[ShipParcels, WrapGift, EmailReceipt])
    def fulfil(context):
        """Every order ships its parcels and emails a receipt; gifts are wrapped too."""
        branches = [ShipParcels, EmailReceipt]
        if context.initial.get("gift_note"):
            branches.append(WrapGift)
        return branches
