"""Manifest stores: where reflow keeps runs, task instances and cached outputs."""
