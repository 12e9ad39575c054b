"""A real SMTP server (aiosmtpd) for the alert tests: accepts mail on
127.0.0.1:PORT, requires AUTH LOGIN/PLAIN with USER and PASSWORD, and prints
one JSON line per message accepted (Message-ID, Subject, recipients, the
authenticated user) on stdout. Runs until killed.

usage: smtp_sink.py PORT USER PASSWORD
"""
import email
import json
import signal
import sys
import threading
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content or envelope.content)
        print(json.dumps({
            "message_id": message.get("Message-ID"),
            "subject": message.get("Subject"),
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "auth": getattr(session, "botai_login", None),
            "body": message.get_payload(decode=True).decode("utf-8", "replace"),
        }), flush=True)
        return "250 Message accepted for delivery"


def main():
    # AUTH without TLS is what this loopback test server is for.
    warnings.filterwarnings("ignore")
    port, user, password = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3].encode()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == user and auth_data.password == password
        if ok:
            session.botai_login = auth_data.login.decode()
        return AuthResult(success=ok, handled=False)

    controller = Controller(Sink(), hostname="127.0.0.1", port=port, authenticator=authenticator,
                            auth_required=True, auth_require_tls=False)
    controller.start()
    print(json.dumps({"listening": port}), flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    controller.stop()


if __name__ == "__main__":
    main()
