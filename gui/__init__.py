"""The PySide6 console (no business rules here: they live in core)."""
