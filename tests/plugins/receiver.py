"""Fixtures for a real HTTP callback receiver (owned by the delivery work)."""
