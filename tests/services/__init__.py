"""Starters for the real services the tests talk to; each is started once per test session."""
