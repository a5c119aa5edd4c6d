"""Generated gRPC stubs (`make protos` regenerates them from servelab.proto)."""
