"""Reusable test helpers of the corpus builder (fake sources, a fake hub, a tiny corpus, fault injection).

Imported by ``tests/conftest.py`` fixtures and by the child processes some tests start; test modules
share them through those fixtures.
"""
