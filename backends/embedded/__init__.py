"""Backends that need no hardware or host service: bmcd's own state only."""
