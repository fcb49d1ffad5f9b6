"""chatd: a real-time chat server with rooms (Tornado + python-socketio, Redis, MongoDB)."""

__version__ = "0.1.0"
