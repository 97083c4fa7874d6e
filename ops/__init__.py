"""Operator tooling: local-mode stack (make up/down/logs) and .env creation."""
