# A package, so that these test modules (test_will.py, ...) do not clash with same-named modules in
# sibling directories (tests/conformance/v5) under pytest's default import mode.
