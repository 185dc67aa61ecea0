"""``UsageService`` servicer (ingestion and usage reads land with the usage issue)."""

from __future__ import annotations

from as2aas.billing.v1 import usage_service_pb2_grpc as pb_grpc

from billing_svc.storage.db import Database


class UsageServicer(pb_grpc.UsageServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db
