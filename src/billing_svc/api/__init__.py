"""gRPC entry points: translate requests, call one use case, translate the result."""
