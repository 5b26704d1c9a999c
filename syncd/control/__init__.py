"""The control socket: a running daemon's small local API (status, retry, passes, hold and
release, a stream of events) on a Unix socket in its state dir that only its user can open.

`bus` carries events from the daemon's threads to the stream's readers, `api` is the Starlette
app, `server` runs it on the socket, `client` is what the commands use to reach it.
"""
