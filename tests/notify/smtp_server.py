"""A real SMTP server for opslog's email tests: aiosmtpd (PyPI) on 127.0.0.1, in one of three
modes — `starttls` (STARTTLS required before anything else), `tls` (TLS from the first byte) or
`plain` — optionally requiring a login (`--user`, `--password`; only over TLS). Its certificate
comes from a throwaway CA made with trustme (PyPI); the CA's PEM is written to `<dir>/ca.pem` for
opslog to trust (`notifiers.email.ca_file`).

Every message received is parsed with Python's `email` package and written to `<dir>/<n>.json`
(envelope, headers, each part's type and text). Prints `READY <port>` once listening; stops when
stdin closes."""
import argparse
import asyncio
import email
import email.policy
import json
import os
import socket
import ssl
import sys

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Recorder:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = []
        for part in message.walk():
            if part.is_multipart():
                continue
            parts.append({"type": part.get_content_type(), "text": part.get_content()})
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(message["subject"]),
            "from": str(message["from"]),
            "to": str(message["to"]),
            "content_type": message.get_content_type(),
            "parts": parts,
            # The socket itself says whether it speaks TLS (aiosmtpd sets `session.ssl` only after STARTTLS).
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "authenticated": session.authenticated,
            "login": getattr(session, "opslog_login", None),
        }
        self.count += 1
        path = os.path.join(self.out_dir, f"{self.count}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 Message accepted for delivery"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["starttls", "tls", "plain"], required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(os.path.join(args.dir, "ca.pem"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == args.user
            and auth_data.password.decode() == args.password
        )
        if ok:
            # Kept on the session by hand: aiosmtpd leaves `session.auth_data` empty on some paths.
            session.opslog_login = args.user
        return AuthResult(success=ok)

    # aiosmtpd's controller probes its own port once started, so it needs a real number.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kwargs = {"hostname": "127.0.0.1", "port": port}
    if args.mode == "starttls":
        kwargs.update(tls_context=context, require_starttls=True)
    elif args.mode == "tls":
        kwargs.update(ssl_context=context)
    if args.user:
        # In `tls` mode the socket is TLS from the first byte, which aiosmtpd does not count
        # as TLS for AUTH (it looks for STARTTLS); AUTH is refused before STARTTLS in `starttls`.
        kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=args.mode == "starttls")
    controller = Controller(Recorder(args.dir), **kwargs)
    controller.start()
    print(f"READY {port}", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
