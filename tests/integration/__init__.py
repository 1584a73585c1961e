"""Integration tests: Backline against a real Synapse started by the tests."""
