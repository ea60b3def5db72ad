"""The worker side on its own: a worker pool that reaches a JQS server over the HTTP worker
protocol, with no database. The server's `jqs worker --url` runs it, and so does the
client's (`jqs-client[worker]`), which carries these modules without the server's."""
