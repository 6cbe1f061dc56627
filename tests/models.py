"""Models used only by the tests (for example, rows that atomic steps write)."""
