"""JSON-RPC 2.0 over ZeroMQ: the protocol guard, the method registry, the gateway actor, the client and the CLI."""
