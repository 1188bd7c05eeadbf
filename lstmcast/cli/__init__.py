"""The edge: Typer commands that parse options, call one API function and render what it returns."""

from lstmcast.cli.app import app, main

__all__ = ["app", "main"]
