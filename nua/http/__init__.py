"""JSON-RPC over HTTP, the event stream as Server-Sent Events, and the web console (issue 14)."""
