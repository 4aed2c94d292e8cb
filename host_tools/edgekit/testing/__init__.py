"""Helpers for tests: run code inside the real MicroPython VM."""
