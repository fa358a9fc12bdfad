"""Curator's domain: the project folder, its SQLite catalog, runs, labels, export and the CLI."""

__version__ = "0.1.0"
