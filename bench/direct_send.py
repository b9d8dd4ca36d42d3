#!/usr/bin/env python
"""Send N small messages straight to an upstream, one SMTP session (STARTTLS + AUTH) per message.

This is the reference for the relay's throughput: what a sender without session reuse achieves
against the same upstream. Runs inside the relay container (copied there by bench/run.py).

Usage: direct_send.py HOST PORT USER CAFILE COUNT SENDER RECIPIENT   (password on stdin)
"""
import smtplib
import ssl
import sys


def main():
    host, port, user, cafile, count, sender, recipient = sys.argv[1:8]
    password = sys.stdin.readline().rstrip("\n")
    for number in range(int(count)):
        # A new context per message: no TLS session resumption either, like an unconfigured client.
        context = ssl.create_default_context(cafile=cafile)
        message = (f"From: {sender}\r\nTo: {recipient}\r\nSubject: bench direct {number}\r\n\r\n"
                   f"Benchmark message {number}.\r\n")
        with smtplib.SMTP(host, int(port), timeout=30) as session:
            session.starttls(context=context)
            session.login(user, password)
            session.sendmail(sender, [recipient], message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
