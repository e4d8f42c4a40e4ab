"""Webhooks to an HTTPS receiver: its certificate is signed by a private CA (made here with
openssl) that the server trusts through SSL_CERT_FILE, the usual way to add one; the
server then delivers signed events over TLS. Without SSL_CERT_FILE the same receiver is
not trusted and gets nothing (the TLS check is real). And a scheme the build cannot serve
is refused at start-up with a message. Loopback only.
Usage: python3 tests/tls/webhooks.py path/to/switchboard
"""
import hashlib
import hmac
import http.server
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from common import free_port, private_ca

BIN = sys.argv[1]
KEY, SECRET = "tlskey", "tls-webhook-test-secret-0123"
T, CA, CERT, PRIV = private_ca()
GOT = []


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        GOT.append((self.headers.get("x-switchboard-signature", ""), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass


def receiver():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, PRIV)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, srv.server_address[1]


def start(hook_port, env_extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_") and k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    env.update({"SWITCHBOARD_KEYS": f"{KEY}:{SECRET}", "RUST_LOG": "warn", **env_extra})
    log = tempfile.TemporaryFile(mode="w+")
    p = subprocess.Popen([BIN, "--http", "127.0.0.1:0", "--rtc-port", str(free_port()), "--workers", "1",
                          "--webhook-url", f"https://127.0.0.1:{hook_port}/hook"],
                         stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    line = p.stdout.readline()
    m = re.search(r"open (http://[^\s/]+)/", line)
    if not m:
        p.kill()
        log.seek(0)
        sys.exit(f"the server did not start: {line}{log.read()[-2000:]}")
    return p, m.group(1)


def admin_token():
    import base64
    b64 = lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b"=").decode()
    body = b64({"alg": "HS256", "typ": "JWT"}) + "." + b64(
        {"iss": KEY, "sub": "admin", "exp": int(time.time()) + 600, "video": {"roomCreate": True, "roomAdmin": True}})
    sig = base64.urlsafe_b64encode(hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    return f"{body}.{sig}"


def create_room(base, name):
    req = urllib.request.Request(f"{base}/api/v1/rooms", data=json.dumps({"name": name}).encode(), method="POST",
                                 headers={"authorization": f"Bearer {admin_token()}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def room_started(name, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        for sig, body in GOT:
            e = json.loads(body)
            if e["event"] == "room_started" and e["room"]["name"] == name:
                return sig, body
        time.sleep(0.1)
    return None


failures = []
srv, port = receiver()
# Trusted through SSL_CERT_FILE: delivered, signed.
p, base = start(port, {"SSL_CERT_FILE": CA})
try:
    create_room(base, "tls-trusted")
    got = room_started("tls-trusted", 10)
    ok = False
    if got:
        sig, body = got
        t = re.search(r"t=(\d+)", sig).group(1)
        want = hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        ok = f"v1={want}" in sig
    print(("ok   " if ok else "FAIL ") + f"an HTTPS receiver trusted through SSL_CERT_FILE gets the signed event ({bool(got)})")
    if not ok:
        failures.append("https webhook with SSL_CERT_FILE")
finally:
    p.terminate()
    p.wait(timeout=20)
# Not trusted: nothing arrives (the certificate is checked).
p, base = start(port, {})
try:
    create_room(base, "tls-untrusted")
    got = room_started("tls-untrusted", 4)
    print(("ok   " if not got else "FAIL ") + "without SSL_CERT_FILE the self-signed receiver is not trusted: nothing delivered")
    if got:
        failures.append("an untrusted certificate was accepted")
finally:
    p.terminate()
    p.wait(timeout=20)
# A scheme the build cannot serve: refused at start-up, with a message.
r = subprocess.run([BIN, "--http", "127.0.0.1:0", "config", "print"], capture_output=True, text=True,
                   env={**os.environ, "SWITCHBOARD_KEYS": f"{KEY}:{SECRET}", "SWITCHBOARD_REDIS_URL": "redis+unix:///run/redis.sock"})
ok = r.returncode != 0 and "redis+unix" in r.stderr and "redis_url" in r.stderr
print(("ok   " if ok else "FAIL ") + f"redis+unix:// is refused at start-up: {r.stderr.strip()[:160]}")
if not ok:
    failures.append("redis+unix:// accepted")
srv.shutdown()
if failures:
    sys.exit("FAILED: " + ", ".join(failures))
print("ok: webhooks over TLS with a private CA; unsupported schemes refused")
