"""bmcd's in-tree backends, installed as the package ``bmcd_backends``."""
