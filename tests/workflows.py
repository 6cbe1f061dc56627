"""Test workflows, autodiscovered like a user app's ``workflows.py``.

Steps and workflows that several test modules share are defined here, at module level, so that
workers and the registry can find them by name.
"""
