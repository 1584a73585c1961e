"""Backline: expert routing for Matrix."""

__version__ = "0.1.0"
