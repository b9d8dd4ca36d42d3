#!/usr/bin/env python
# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Try the OAuth2 hop's guard from the relay, as whichever user runs this.

Usage: guard_probe.py login PORT MAILBOX   connect to 127.0.0.1:PORT and log in with AUTH PLAIN as
                                           MAILBOX, with a password of this user's choosing
       guard_probe.py listen PORT SECONDS  listen on 127.0.0.1:PORT for SECONDS (a would-be hop)
       guard_probe.py connect PORT         connect to 127.0.0.1:PORT
Prints one line: refused / logged in / login failed, listening, connected / not connected (and why).
"""
import smtplib
import socket
import sys


def main(mode, port, extra=None):
    port = int(port)
    if mode == 'login':
        try:
            client = smtplib.SMTP('127.0.0.1', port, timeout=10)
        except ConnectionRefusedError:
            print('refused')
            return
        try:
            client.login(extra, 'chosen by %s' % __import__('getpass').getuser())
            print('logged in')
        except smtplib.SMTPException as exc:
            print('login failed: %s' % exc)
    elif mode == 'listen':
        server = socket.socket()
        # As the hop does (its connections of before may linger in TIME_WAIT).
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(('127.0.0.1', port))
        server.listen(5)
        server.settimeout(float(extra))
        print('listening', flush=True)
        try:
            server.accept()
            print('accepted a connection')
        except socket.timeout:
            print('accepted none')
    elif mode == 'connect':
        client = socket.socket()
        client.settimeout(8)
        try:
            client.connect(('127.0.0.1', port))
            print('connected')
        except OSError as exc:
            print('not connected: %s' % exc)


if __name__ == '__main__':
    main(*sys.argv[1:])
