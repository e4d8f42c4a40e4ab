"""A cluster on Redis over TLS: redis-server listens only on its TLS port, with a
certificate signed by a private CA made here; two nodes given `rediss://` and that CA
through SSL_CERT_FILE register there and place a room (a room made through one node is
served through the other). A node that does not trust the CA refuses to start, saying why.
Loopback only. Usage: python3 tests/tls/redis.py path/to/switchboard
"""
import base64
import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from common import free_port, private_ca

BIN = sys.argv[1]
KEY, SECRET = "rediskey", "rediss-cluster-test-secret-0123"
T, CA, CERT, PRIV = private_ca()


def redis_tls():
    port = free_port()
    p = subprocess.Popen(["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                          "--tls-cert-file", CERT, "--tls-key-file", PRIV, "--tls-ca-cert-file", CA,
                          "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", T],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p, port
        except OSError:
            time.sleep(0.1)
    p.kill()
    sys.exit("redis-server with TLS did not start")


def sentinel_tls(primary_port):
    """A Sentinel on its TLS port only, watching the TLS primary as `sb`."""
    port = free_port()
    conf = os.path.join(T, "sentinel.conf")
    with open(conf, "w") as f:
        f.write(f"port 0\ntls-port {port}\nbind 127.0.0.1\ntls-cert-file {CERT}\ntls-key-file {PRIV}\n"
                f"tls-ca-cert-file {CA}\ntls-auth-clients no\ntls-replication yes\ndir {T}\n"
                f"sentinel monitor sb 127.0.0.1 {primary_port} 1\n")
    p = subprocess.Popen(["redis-server", conf, "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        r = subprocess.run(["redis-cli", "--tls", "--cacert", CA, "-h", "127.0.0.1", "-p", str(port),
                            "sentinel", "get-master-addr-by-name", "sb"], capture_output=True, text=True)
        if str(primary_port) in r.stdout:
            return p, port
        time.sleep(0.2)
    p.kill()
    sys.exit("redis-sentinel with TLS did not start")


def node(name, url, env_extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_") and k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    env.update({"SWITCHBOARD_KEYS": f"{KEY}:{SECRET}", "RUST_LOG": "warn", "SWITCHBOARD_REDIS_URL": url, **env_extra})
    return subprocess.Popen([BIN, "--http", "127.0.0.1:0", "--rtc-port", str(free_port()), "--rtc-tcp-port", "0",
                             "--workers", "1", "--node-id", name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def base_of(p):
    line = p.stdout.readline()
    m = re.search(r"open (http://[^\s/]+)/", line)
    return m.group(1) if m else None


def admin_token():
    b64 = lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b"=").decode()
    body = b64({"alg": "HS256", "typ": "JWT"}) + "." + b64(
        {"iss": KEY, "sub": "admin", "exp": int(time.time()) + 600,
         "video": {"roomCreate": True, "roomAdmin": True, "roomList": True}})
    sig = base64.urlsafe_b64encode(hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    return f"{body}.{sig}"


def call(method, url, body=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body else None, method=method,
                                 headers={"authorization": f"Bearer {admin_token()}", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None


failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


redis, port = redis_tls()
servers = [redis]
url = f"rediss://127.0.0.1:{port}"
nodes = []
try:
    a, b = node("tls-a", url, {"SSL_CERT_FILE": CA}), node("tls-b", url, {"SSL_CERT_FILE": CA})
    nodes += [a, b]
    base_a, base_b = base_of(a), base_of(b)
    check(bool(base_a and base_b), f"two nodes on rediss:// with the CA in SSL_CERT_FILE start ({base_a}, {base_b})")
    if base_a and base_b:
        keys = subprocess.run(["redis-cli", "--tls", "--cacert", CA, "-h", "127.0.0.1", "-p", str(port),
                               "--scan", "--pattern", "sb:node:*"], capture_output=True, text=True).stdout.split()
        check(sorted(keys) == ["sb:node:tls-a", "sb:node:tls-b"], f"both registered in the TLS Redis: {keys}")
        status, _ = call("POST", f"{base_a}/api/v1/rooms", {"name": "over-tls"})
        check(status in (200, 201), f"a room made through node a ({status})")
        home = subprocess.run(["redis-cli", "--tls", "--cacert", CA, "-h", "127.0.0.1", "-p", str(port),
                               "--scan", "--pattern", "sb:room:over-tls*"], capture_output=True, text=True).stdout.split()
        check(bool(home), f"its placement is in the TLS Redis: {home}")
        got = [call("GET", f"{base}/api/v1/rooms/over-tls") for base in (base_a, base_b)]
        check(all(s == 200 and r and r["name"] == "over-tls" for s, r in got),
              f"the room is served through either node: {[s for s, _ in got]}")
    # Through a Sentinel over TLS: the node asks it for the primary, and both are TLS.
    sentinel, sport = sentinel_tls(port)
    servers.append(sentinel)
    d = node("tls-d", f"rediss+sentinel://127.0.0.1:{sport}/sb", {"SSL_CERT_FILE": CA})
    nodes.append(d)
    base_d = base_of(d)
    status, room = call("GET", f"{base_d}/api/v1/rooms/over-tls") if base_d else (None, None)
    check(status == 200, f"a node on rediss+sentinel:// starts and serves the room placed before ({status})")
    # Without the CA the certificate is not trusted: the node says so and stops.
    c = node("tls-c", url, {})
    nodes.append(c)
    try:
        _, err = c.communicate(timeout=30)
        check(c.returncode != 0 and "redis_url" in err and ("certificate" in err.lower() or "UnknownIssuer" in err),
              f"without the CA a node refuses to start: {err.strip().splitlines()[-1][:200] if err.strip() else ''}")
    except subprocess.TimeoutExpired:
        check(False, "without the CA a node refuses to start (it kept running)")
finally:
    for p in nodes:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    for p in servers:
        p.terminate()
        p.wait(timeout=10)
if failures:
    sys.exit("FAILED: " + ", ".join(failures))
print("ok: a cluster on Redis over TLS, trusted through SSL_CERT_FILE")
