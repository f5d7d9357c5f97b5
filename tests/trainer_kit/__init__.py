"""Reusable test helpers of the trainer: a tiny token corpus, tiny training runs, fault injection.

Imported by the trainer section of ``tests/conftest.py``, by the benches and by the child processes some
tests start; test modules get them through those fixtures or import the kit, never another test module.
"""
