"""Pure billing rules: no gRPC, no SQL. Everything here is plain values in, plain values out."""
