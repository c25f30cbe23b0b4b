"""A real SMTP server for Tenantry's tests (aiosmtpd), listening on 127.0.0.1.

Every accepted message is stored per recipient as
    <dir>/<recipient>/<n>.eml    the raw message as received
    <dir>/<recipient>/<n>.json   {from, to, subject, text, html, auth_user, tls}
so tests can read what was delivered. AUTH (PLAIN/LOGIN) is required, with the credentials
given on the command line. Without --tls no TLS is offered; with --tls starttls the server
requires STARTTLS before AUTH and MAIL; with --tls implicit it speaks TLS from the start.

    python smtp_sink.py --dir DIR --port-file FILE [--user tenantry --password secret]
                        [--tls starttls|implicit --tls-cert PEM --tls-key PEM]

The chosen port is written to --port-file once the server accepts connections.
"""

import argparse
import email
import email.policy
import json
import os
import signal
import socket
import ssl
import threading
import uuid
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Store:
    def __init__(self, root):
        self.root = root

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        text = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        record = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "subject": str(message.get("subject", "")),
            "text": text.get_content() if text else "",
            "html": html.get_content() if html else "",
            "auth_user": session.auth_data.login.decode() if session.auth_data else None,
            "tls": server.transport.get_extra_info("ssl_object") is not None,
        }
        name = uuid.uuid4().hex
        for rcpt in envelope.rcpt_tos:
            folder = os.path.join(self.root, rcpt.lower())
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, name + ".eml"), "wb") as f:
                f.write(raw)
            tmp = os.path.join(folder, "." + name + ".tmp")
            with open(tmp, "w") as f:
                json.dump(record, f)
            os.replace(tmp, os.path.join(folder, name + ".json"))
        return "250 Message accepted for delivery"


def main():
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--user", default="tenantry")
    parser.add_argument("--password", default="test-secret")
    parser.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()
    tls = {}
    if args.tls != "none":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls == "starttls":
            tls = {"tls_context": context, "require_starttls": True, "auth_require_tls": True}
        else:
            tls = {"ssl_context": context, "auth_require_tls": False}
    else:
        tls = {"auth_require_tls": False}
    os.makedirs(args.dir, exist_ok=True)

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == args.user
            and auth_data.password.decode() == args.password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    # aiosmtpd cannot listen on port 0 (it connects to itself to check the start), so pick a
    # free port first and retry if another process takes it in between.
    for attempt in range(20):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        controller = Controller(
            Store(args.dir),
            hostname="127.0.0.1",
            port=port,
            authenticator=authenticate,
            auth_required=True,
            **tls,
        )
        try:
            controller.start()
            break
        except Exception:
            if attempt == 19:
                raise
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(port))
    os.replace(tmp, args.port_file)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
