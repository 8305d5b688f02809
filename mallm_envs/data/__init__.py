"""Bundled task data (written by this project, MIT) and its loaders."""
