"""Fixtures for the interoperability tests: `mosq_sub` and `paho` live in tests/conftest.py, shared with
the TLS interop tests; both are torn down before the broker is stopped."""
