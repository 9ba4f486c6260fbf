"""Core services of bmcd: errors, privileges, state, configuration."""
