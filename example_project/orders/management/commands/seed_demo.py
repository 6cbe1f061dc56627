"""Create demo instances in every status: ``python manage.py seed_demo``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from hephaestus_django import cancel, resume, start_instance
from hephaestus_django.core import Instance
from hephaestus_django.exceptions import AlreadyRunning
from hephaestus_django.storage.models import WorkflowInstance
from hephaestus_django.storage.orm import DjangoStorage
from orders.workflows import CustomerOnboarding, OrderFulfilment, ParcelOrder, ParcelShipment, SupportTicket

ITEMS = [{"sku": "MUG-01", "price": 12}, {"sku": "TEE-02", "price": 20}]
PARCELS = [[{"sku": "MUG-01"}], [{"sku": "TEE-02"}, {"sku": "CAP-03"}]]


class Command(BaseCommand):
    help = "Seed demo workflow instances in every status (pending, running, waiting, completed, failed, cancelled)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--fresh", action="store_true", help="delete every instance first")

    def handle(self, *args: Any, fresh: bool = False, **options: Any) -> None:
        if fresh:
            WorkflowInstance.objects.all().delete()
        created = []

        def attempt(label: str, func: Any) -> None:
            try:
                instance = func()
            except AlreadyRunning:
                self.stdout.write(f"  {label}: already there")
                return
            created.append(instance)
            self.stdout.write(f"  {label}: {instance.id} is {instance.status}")

        # failed: a payment whose retries are exhausted (first: it moves the clock to fire its retries)
        attempt("failed", self._failed)
        # failed after its compensations: the parcel was damaged, so the stock was released and the
        # payment refunded (history: failed, then two "compensated" entries)
        attempt("failed (compensated)", lambda: start_instance(OrderFulfilment, {"items": ITEMS, "damaged": True},
                                                               id="order::ORD-1006"))
        # running: the card was declined, the payment is retried in a few seconds
        attempt("running", lambda: start_instance(OrderFulfilment, {"items": ITEMS, "card": "declined"},
                                                  id="order::ORD-1003"))
        # waiting: paid and packed, waiting for the carrier (with a 2-day timeout timer)
        attempt("waiting", lambda: start_instance(OrderFulfilment, {"items": ITEMS, "customer": "Zoë"},
                                                  id="order::ORD-1001"))
        # completed: an invalid order is rejected at once; a routed support ticket
        attempt("completed", lambda: start_instance(OrderFulfilment, {"items": []}, id="order::ORD-1002"))
        attempt("completed", lambda: start_instance(SupportTicket, {"priority": "high"}, id="ticket::T-1"))
        # waiting on email verification (v2) and completed at once (v1, chosen by version_for)
        attempt("waiting", lambda: start_instance(CustomerOnboarding, {"email": "ana@example.com"},
                                                  id="customer::ana"))
        attempt("completed", lambda: start_instance(CustomerOnboarding, {"email": "bo@example.com", "legacy": True},
                                                    id="customer::bo"))
        # cancelled: started, then cancelled while waiting
        attempt("cancelled", lambda: (start_instance(OrderFulfilment, {"items": ITEMS}, id="order::ORD-1004"),
                                      cancel("order::ORD-1004"))[1])
        # pending: stored but not started yet
        attempt("pending", self._pending)
        # resume data, idempotency keys, child workflows, a fan-out chosen at run time (ParcelOrder):
        # waiting for the payment webhook; paid, its parcels in transit; paid and delivered
        attempt("waiting", lambda: start_instance(ParcelOrder, {"parcels": PARCELS}, id="porder::PO-2001"))
        attempt("waiting", lambda: self._paid("PO-2002"))
        attempt("completed", lambda: self._delivered("PO-2003"))
        self.stdout.write(self.style.SUCCESS(f"Seeded {len(created)} demo instances."))

    def _failed(self) -> Instance:
        from hephaestus_django.runtime.dispatch import get_runner
        from hephaestus_django.testing import frozen_clock

        with frozen_clock() as clock:
            instance = start_instance(OrderFulfilment, {"items": ITEMS, "card": "declined"}, id="order::ORD-1005")
            service = get_runner()
            for _ in range(5):
                clock.advance(seconds=60)
                service.fire_due_timers()
        return service.get(instance.id)

    def _paid(self, value: str, **context: Any) -> Instance:
        start_instance(ParcelOrder, {"parcels": PARCELS, **context}, id=f"porder::{value}")
        webhook = {"charge_id": f"ch_{value}", "amount": 32}
        resume(f"porder::{value}", "payment_succeeded", data=webhook, idempotency_key=f"evt_{value}")
        # the provider redelivers the webhook: the key makes it a no-op
        return resume(f"porder::{value}", "payment_succeeded", data=webhook, idempotency_key=f"evt_{value}")

    def _delivered(self, value: str) -> Instance:
        self._paid(value, gift_note="Happy birthday!")
        for number in range(1, len(PARCELS) + 1):
            ParcelShipment.resume(f"{value}-{number}", "delivered", data={"signed_by": "Zoë"})
        return ParcelOrder.get(value)

    def _pending(self) -> Instance:
        instance = Instance.new(SupportTicket, 1, {"priority": "low"}, "ticket::T-2")
        with transaction.atomic():
            DjangoStorage().create(instance, SupportTicket.unique.scope)
        return instance
