"""Collaborative-writing corpus: summary documents and expansion briefs (see README.md)."""
