#!/usr/bin/env python
"""Wait for mail in a sink's Maildir; runs inside the sink container (copied there by bench/run.py).

Usage:
  lab_wait.py count MAILDIR N TIMEOUT       wait for N new messages (counted from start)
  lab_wait.py marker MAILDIR MARKER TIMEOUT wait for the message whose content holds MARKER

Prints "ready" once the starting state is read, then one JSON line: the arrival time of the
(last) message as the file's modification time, which is the delivery time on the shared host clock.
"""
import json
import os
import sys
import time


def names(maildir):
    """Message files in new/ and cur/, with their folder."""
    found = set()
    for sub in ("new", "cur"):
        folder = os.path.join(maildir, sub)
        if os.path.isdir(folder):
            found.update(os.path.join(folder, name) for name in os.listdir(folder))
    return found


def holds(path, marker):
    """True when the message file contains marker (it may vanish when moved to cur/)."""
    try:
        with open(path, "rb") as handle:
            return marker.encode() in handle.read()
    except OSError:
        return False


def main():
    mode, maildir, wanted, timeout = sys.argv[1:5]
    deadline = time.time() + float(timeout)
    seen = names(maildir)
    print("ready", flush=True)
    arrived = []
    while time.time() < deadline:
        fresh = names(maildir) - seen
        seen |= fresh
        if mode == "count":
            arrived.extend(fresh)
            done = len(arrived) >= int(wanted)
        else:
            arrived.extend(path for path in fresh if holds(path, wanted))
            done = bool(arrived)
        if done:
            mtimes = [os.stat(path).st_mtime for path in arrived if os.path.exists(path)]
            print(json.dumps({"count": len(arrived), "arrival": max(mtimes) if mtimes else time.time()}))
            return 0
        time.sleep(0.05)
    print(json.dumps({"count": len(arrived), "arrival": None}))
    return 1


if __name__ == "__main__":
    sys.exit(main())
