"""The HTTP server's own guards: header limits, slow-client deadlines, a connection cap.

uvicorn parses and serves; `protocol.GuardedProtocol` adds what it lacks (see
docs/scaling.md), and `fds` sizes the connection cap to the process's file descriptors.
"""
