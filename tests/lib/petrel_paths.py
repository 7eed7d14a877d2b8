"""Where the petrel binary under test is (PETREL_BIN, default build/petrel).

Import this rather than `conftest`: with several conftest.py files on
sys.path, `from conftest import ...` resolves to whichever comes first.
"""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PETREL_BIN = os.environ.get("PETREL_BIN", str(ROOT / "build" / "petrel"))
