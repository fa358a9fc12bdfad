"""The desktop app (PySide6): Qt models over the Project facade, views and background workers."""
