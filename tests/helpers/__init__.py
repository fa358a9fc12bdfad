"""Builders shared by the tests (and the bench scripts): real media files, app test helpers."""
