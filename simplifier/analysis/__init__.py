"""Analyses of programs: each returns a map, nothing is stored on the IR."""
