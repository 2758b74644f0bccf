"""Writes every TCP connection a Python process attempts, one ``host:port`` line each, to ``$CONNECTION_LOG``.

Put this folder first on ``PYTHONPATH`` of a subprocess: Python imports ``sitecustomize`` at start-up, so the
process runs unchanged and a test counts the connections it tried (a retry shows as a second line).
"""

import os
import sys

LOG = os.environ.get("CONNECTION_LOG")


def log_connection(event, args):
    # The audit event fires before the connect, so attempts that are refused or time out are written too.
    if event == "socket.connect" and isinstance(args[1], tuple):
        with open(LOG, "a", encoding="utf-8") as log:
            log.write(f"{args[1][0]}:{args[1][1]}\n")


if LOG:
    sys.addaudithook(log_connection)
