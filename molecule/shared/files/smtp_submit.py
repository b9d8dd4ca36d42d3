#!/usr/bin/env python
"""Submit one message by plain SMTP (as an MUA on a lab client would) and print the outcome as JSON.

Usage: smtp_submit.py HOST SENDER RECIPIENT SUBJECT
Exit status 0 whatever the server answered: the caller asserts on the printed code and text.
"""
import json
import smtplib
import sys
from email.message import EmailMessage

host, sender, recipient, subject = sys.argv[1:5]
msg = EmailMessage()
msg["From"] = sender
msg["To"] = recipient
msg["Subject"] = subject
msg.set_content("Lab message %s\n" % subject)
result = {"accepted": False, "code": None, "text": ""}
try:
    with smtplib.SMTP(host, 25, timeout=30) as smtp:
        smtp.ehlo("lab-client.test")
        smtp.send_message(msg)
        result.update(accepted=True, code=250, text="queued")
except smtplib.SMTPRecipientsRefused as exc:
    code, text = list(exc.recipients.values())[0]
    result.update(code=code, text=text.decode(errors="replace"))
except smtplib.SMTPResponseException as exc:
    result.update(code=exc.smtp_code, text=exc.smtp_error.decode(errors="replace"))
except OSError as exc:
    result.update(text=str(exc))
print(json.dumps(result))
