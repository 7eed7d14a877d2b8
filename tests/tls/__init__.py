"""TLS listener tests (see conftest.py)."""
