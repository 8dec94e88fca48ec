"""A small SMTP server for PSA Bridge's email tests, on aiosmtpd.

    server.py --port PORT --out messages.jsonl [--control control.json]

Listens on 127.0.0.1:PORT (0 picks a free port) and prints one JSON line when ready:
{"port": N}. Each message it accepts is appended to --out as one JSON line: the envelope
("mail_from", "rcpt_tos"), the raw message ("data"), and, decoded for convenience, its
"subject", "message_id" and text "body".

To test failures, write {"code": 451, "message": "try again later", "count": 2} to the
--control file: the next `count` messages are refused at DATA with that reply (and recorded
in --out with "refused": true), then messages are accepted again.
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import sys

from aiosmtpd.smtp import SMTP


class Recorder:
    def __init__(self, out, control):
        self.out = out
        self.control = control

    def take_failure(self):
        """The reply to refuse this message with, if the control file asks for one."""
        if not self.control or not os.path.exists(self.control):
            return None
        with open(self.control, encoding="utf-8") as f:
            text = f.read().strip()
        if not text:
            return None
        rule = json.loads(text)
        if int(rule.get("count", 0)) <= 0:
            return None
        rule["count"] = int(rule["count"]) - 1
        tmp = self.control + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(rule, f)
        os.replace(tmp, self.control)
        return "%d %s" % (int(rule["code"]), rule.get("message", "refused by the test server"))

    def record(self, envelope, refused):
        raw = envelope.content.decode("utf-8", errors="replace")
        msg = email.message_from_string(raw, policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain",))
        line = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "subject": str(msg["subject"] or ""),
            "message_id": str(msg["message-id"] or ""),
            "body": body.get_content().replace("\r\n", "\n") if body is not None else "",
            "data": raw,
            "refused": refused,
        }
        with open(self.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")

    async def handle_DATA(self, server, session, envelope):
        reply = self.take_failure()
        self.record(envelope, reply is not None)
        return reply or "250 OK"


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--control")
    args = ap.parse_args()
    handler = Recorder(args.out, args.control)
    loop = asyncio.get_running_loop()
    # A fixed hostname: aiosmtpd would otherwise look up the machine's FQDN, which can be slow.
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="psabridge-test-smtp", decode_data=False),
        host="127.0.0.1",
        port=args.port,
    )
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"port": port}), flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
