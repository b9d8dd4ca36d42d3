#!/usr/bin/env python
"""Find the messages whose Subject holds MARKER in a sink's Maildir and describe how they arrived.

Usage: maildir_find.py MAILDIR MARKER
Prints JSON: count, and per message the Received header the sink added (the first one), whether the
session was authenticated over TLS (Postfix writes 'with ESMTPSA') and the authenticated user, the
From, Reply-To and Return-Path (the envelope sender) headers, and when the sink delivered it (the
file's modification time, seconds since the epoch).
"""
import email
import email.policy
import json
import os
import re
import sys

maildir, marker = sys.argv[1:3]
found = []
for sub in ("new", "cur"):
    folder = os.path.join(maildir, sub)
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        with open(os.path.join(folder, name), "rb") as handle:
            msg = email.message_from_binary_file(handle, policy=email.policy.default)
        if marker not in str(msg.get("Subject", "")):
            continue
        received = " ".join(str(msg.get_all("Received", [""])[0]).split())
        user = re.search(r"\(Authenticated sender: ([^)]+)\)", received)
        found.append({
            "file": name,
            "subject": str(msg["Subject"]),
            "received": received,
            "esmtpsa": " with ESMTPSA " in received + " ",
            "auth_user": user.group(1) if user else None,
            "from": str(msg.get("From", "")),
            "reply_to": [str(value) for value in msg.get_all("Reply-To", [])],
            "return_path": str(msg.get("Return-Path", "")),
            "delivered": os.stat(os.path.join(folder, name)).st_mtime,
        })
print(json.dumps({"count": len(found), "messages": found}))
