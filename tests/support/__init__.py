"""Helpers for tests: servers and proxies started by fixtures."""
