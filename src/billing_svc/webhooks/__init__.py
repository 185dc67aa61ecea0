"""The webhook dispatcher: delivers the outbox's events to account endpoints.

It runs beside the gRPC servicers and the scheduler, above ``services``: it leases deliveries
through ``services.deliveries``, signs them with ``domain.signing`` and posts them through
``net.transport`` (docs/architecture.md).
"""
