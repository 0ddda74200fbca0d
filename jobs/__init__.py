"""The job contract: what the API and the workers agree on.

This is the ground floor of batch-translate. ``webhook_api`` and ``worker`` import it and never each other;
it imports neither of them.
"""
