"""The version of lstmcast (written into every run.json)."""

__version__ = "0.1.0"
