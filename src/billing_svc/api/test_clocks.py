"""Test clock RPCs of ``BillingService`` (a mixin of ``BillingServicer``; ``sandbox`` scope)."""

from __future__ import annotations

import grpc
from as2aas.billing.v1 import billing_service_pb2 as pb

from billing_svc.api import convert, validation
from billing_svc.api.common import run
from billing_svc.api.interceptor import current_context
from billing_svc.services import test_clocks
from billing_svc.services.store import Database
from billing_svc.services.views import TestClockView

_STATUS = {
    test_clocks.READY: pb.TestClock.STATUS_READY,
    test_clocks.ADVANCING: pb.TestClock.STATUS_ADVANCING,
}


def test_clock_out(clock: TestClockView) -> pb.TestClock:
    return pb.TestClock(
        test_clock_id=clock.test_clock_id,
        name=clock.name,
        frozen_time=convert.time_out(clock.frozen_time),
        status=_STATUS[clock.status],
        advancing_to=convert.time_out(clock.advancing_to),
        create_time=convert.time_out(clock.created_at),
    )


class TestClockRpcs:
    db: Database

    async def CreateTestClock(
        self, request: pb.CreateTestClockRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateTestClockResponse:
        clock = await run(
            test_clocks.create_test_clock,
            self.db,
            current_context(),
            name=request.name,
            frozen_time=validation.time_in(request, "frozen_time"),
        )
        return pb.CreateTestClockResponse(test_clock=test_clock_out(clock))

    async def AdvanceTestClock(
        self, request: pb.AdvanceTestClockRequest, context: grpc.aio.ServicerContext
    ) -> pb.AdvanceTestClockResponse:
        clock = await run(
            test_clocks.advance_test_clock,
            self.db,
            current_context(),
            test_clock_id=request.test_clock_id,
            frozen_time=validation.time_in(request, "frozen_time"),
        )
        return pb.AdvanceTestClockResponse(test_clock=test_clock_out(clock))

    async def GetTestClock(
        self, request: pb.GetTestClockRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetTestClockResponse:
        clock = await run(test_clocks.get_test_clock, self.db, request.test_clock_id)
        return pb.GetTestClockResponse(test_clock=test_clock_out(clock))

    async def DeleteTestClock(
        self, request: pb.DeleteTestClockRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteTestClockResponse:
        deleted = await run(
            test_clocks.delete_test_clock,
            self.db,
            current_context(),
            test_clock_id=request.test_clock_id,
        )
        return pb.DeleteTestClockResponse(deleted_accounts=deleted)
