#!/usr/bin/env python3
"""Prints the token of the newest link to PATH mailed to ADDRESS, waiting up to 30 s for it.

    python3 benches/mail_link.py <server data dir>/mail ADDRESS verify-email|invitations/accept

With no SMTP server configured the server writes each message as an `.eml` file under
`<data dir>/mail/`; the benchmark scripts seed through the same consent flow a person follows
(verify the address, be invited, accept) and read the links here.
"""

import email
import email.policy
import re
import sys
import time
from pathlib import Path


def token(mail_dir: Path, address: str, link: str) -> str | None:
    pattern = re.compile(r"/" + re.escape(link) + r"\?token=([A-Za-z0-9_-]+)")
    found = None
    for path in sorted(mail_dir.glob("*.eml")):  # names are time-ordered ids: newest last
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if address not in str(message["To"]):
            continue
        body = message.get_body(preferencelist=("plain",))
        match = pattern.search(body.get_content()) if body else None
        if match:
            found = match.group(1)
    return found


def main() -> int:
    mail_dir, address, link = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = token(mail_dir, address, link) if mail_dir.is_dir() else None
        if found:
            print(found)
            return 0
        time.sleep(0.1)
    print(f"no {link} mail to {address} in {mail_dir}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
