"""The cooperative code problem set (see README.md)."""
