"""chatd's load generator: speaks Engine.IO v4 / Socket.IO v5 over WebSocket itself, so the
numbers measure the server and a thin client, not a client library. Entry point: scripts/bench."""
