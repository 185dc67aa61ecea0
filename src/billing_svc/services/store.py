"""The storage handles the layers above the service layer hold, re-exported from it: the
servicers keep a ``Database`` to pass to every use case and build the ``IdempotencyKey`` of a
create request, and neither makes them import ``storage`` (the service layer is their one way
down, as cosmicpython's entry points depend on its unit of work, not on the ORM)."""

from billing_svc.storage.db import Database
from billing_svc.storage.idempotency import IdempotencyKey

__all__ = ["Database", "IdempotencyKey"]
