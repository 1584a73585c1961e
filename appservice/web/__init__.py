"""Backline's HTTP listener: the appservice API, health, and (later) the public API and pages."""
