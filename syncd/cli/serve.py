"""`syncd serve`: the reference file service, in the foreground."""

from __future__ import annotations

import argparse
import errno
import os
import socket
from pathlib import Path

import structlog

from syncd.cli.exits import EXIT_OK
from syncd.cli.logs import configure as configure_logs
from syncd.cli.parser import UsageError, log_level, public_url
from syncd.errors import ConfigError

log = structlog.get_logger("syncd")


def command(args: argparse.Namespace) -> int:
    from syncd.server.app import build_app
    from syncd.server.runner import listen, serve_forever
    from syncd.server.servelimits import ServeLimits
    from syncd.server.service import Limits

    configure_logs(args.log_format, log_level(args, "info"))
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ConfigError(f"--api-key-env: environment variable {args.api_key_env} is not set")
    data = Path(args.data).expanduser()
    try:
        guard = ServeLimits(
            header_timeout=args.header_timeout, body_timeout=args.body_timeout, send_timeout=args.send_timeout,
            keep_alive_timeout=args.keep_alive_timeout, max_connections=args.max_connections,
            shutdown_timeout=args.shutdown_timeout,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    limits = Limits(
        max_upload_size=args.max_upload_size or None, max_parts=args.max_parts,
        upload_ttl=args.upload_ttl, public_url=public_url(args.public_url),
    )
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port: must be from 0 to 65535 (got {args.port})")
    try:
        sockets = listen(args.host, args.port)
    except OSError as exc:
        raise UsageError(listen_problem(exc, args.host, args.port)) from None
    app = build_app(data, api_key=api_key, limits=limits)
    log.info("serving", url=f"http://{args.host}:{args.port}", data=str(data), api_key=bool(api_key),
             max_connections=guard.connection_limit())
    serve_forever(app, sockets, guard)
    return EXIT_OK


def listen_problem(exc: OSError, host: str, port: int) -> str:
    """What to tell the user when `host`:`port` cannot be listened on, naming the option."""
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {host}: {exc.strerror or exc} (--host)"
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is already in use (--port)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {host}: not an address of this machine (--host)"
    if exc.errno == errno.EACCES:
        return f"not allowed to listen on port {port} on {host} (ports below 1024 need privileges; --port)"
    return f"cannot listen on port {port} on {host}: {exc.strerror or exc} (--host, --port)"
