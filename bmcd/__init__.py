"""bmcd: a Redfish management daemon."""

__version__ = "0.1.0"
