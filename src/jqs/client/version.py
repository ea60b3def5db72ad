"""The client's version: the same as the server it comes with (a test holds them equal)."""

VERSION = "0.1.0"
