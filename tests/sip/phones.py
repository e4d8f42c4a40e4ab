"""What the SIP end-to-end tests share: baresip phones (configuration, ctrl_tcp), the
switchboard binary started with a configuration file, tokens and the REST API, and
judging what a phone heard (Goertzel shares of its recording)."""
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

from goertzel import shares

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="sb-sip-")


def baresip_conf(name, port, rtp, tone, account=None, ip="127.0.0.1"):
    d = os.path.join(T, name)
    os.makedirs(d)
    with open(os.path.join(d, "config"), "w") as f:
        f.write(f"""poll_method epoll
sip_listen {ip}:{port}
net_interface {ip}
audio_player alsa,null
audio_alert alsa,null
audio_source ausine,{tone}
ausrc_srate 48000
ausrc_channels 2
auplay_srate 48000
audio_level no
rtp_ports {rtp}
module_path /usr/lib/baresip/modules
module g711.so
module ausine.so
module alsa.so
module sndfile.so
module srtp.so
module_app account.so
module_app menu.so
snd_path {d}
""")
    with open(os.path.join(d, "accounts"), "w") as f:
        f.write((account or f"<sip:{name}@{ip}:{port}>;regint=0;audio_codecs=PCMU") + "\n")
    return d


# The key every test server has (with the development token route on): a keyless server
# would sign with a random secret.
TEST_SECRET = "sip-tests-only-secret-0123456789"


def start_server(conf_text, extra=(), env=None):
    """The switchboard binary with `conf_text` as its configuration file: (process, base URL)."""
    conf = os.path.join(T, f"switchboard-{len(os.listdir(T))}.toml")
    with open(conf, "w") as f:
        f.write(conf_text)
    log = conf[:-5] + ".log"
    p = subprocess.Popen(
        [BIN, "--config", conf, "--http", "127.0.0.1:0", *extra],
        stdout=subprocess.PIPE, stderr=open(log, "w"), text=True,
        env={**os.environ, "RUST_LOG": "info,sip=debug", "SWITCHBOARD_KEYS": f"devkey:{TEST_SECRET}",
             "SWITCHBOARD_DEV": "true", **(env or {})})
    deadline = time.time() + 20
    while time.time() < deadline:
        line = p.stdout.readline()
        m = re.search(r"open (http://[^\s/]+)/", line)
        if m:
            p.log = log
            return p, m.group(1)
    p.kill()
    sys.exit("server did not start:\n" + open(log).read())


def token(video, key=("devkey", None)):
    """A JWT signed with the test key (or `key`: (name, secret)), with these grants."""
    import base64
    import hashlib
    from hmac import new as hmac_new
    b64 = lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b"=").decode()
    claims = {"iss": key[0], "sub": "admin", "exp": int(time.time()) + 600, "video": video}
    body = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}"
    key = (key[1] or TEST_SECRET).encode()
    sig = base64.urlsafe_b64encode(hmac_new(key, body.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    return f"{body}.{sig}"


def api(base, room, path="", method="GET"):
    req = urllib.request.Request(f"{base}/api/v1/rooms/{room}/participants{path}", method=method,
                                 headers={"authorization": f"Bearer {token({'room': room, 'roomAdmin': True})}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, (json.load(r) if method == "GET" else None)
    except urllib.error.HTTPError as e:
        return e.code, None


def participants(base, room):
    status, body = api(base, room)
    return body["participants"] if status == 200 else []


def phone(name, port, rtp, tone, dial, seconds, ctrl=None, account=None, ip="127.0.0.1"):
    """A baresip (its process and directory) that lives `seconds`, dialling `dial` (unless
    driven through ctrl_tcp on port `ctrl`, or None: it waits for calls)."""
    d = baresip_conf(name, port, rtp, tone, account, ip)
    if ctrl:
        with open(os.path.join(d, "config"), "a") as f:
            f.write(f"module_app ctrl_tcp.so\nctrl_tcp_listen 127.0.0.1:{ctrl}\n")
    log = open(os.path.join(T, f"{name}.log"), "w")
    # With ctrl_tcp the test dials itself (Ctrl.send("dial", …)), so that it sees every event.
    dial_args = [] if ctrl or not dial else ["-e", f"/dial {dial}"]
    return subprocess.Popen(["baresip", "-f", d, "-t", str(seconds), *dial_args],
                            stdout=log, stderr=subprocess.STDOUT), d


class Ctrl:
    """baresip's ctrl_tcp: netstring-framed JSON commands and events."""

    def __init__(self, port):
        import socket
        for _ in range(100):
            try:
                self.s = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("ctrl_tcp not reachable")
        self.buf = b""

    def send(self, cmd, params=""):
        b = json.dumps({"command": cmd, "params": params, "token": cmd}).encode()
        self.s.sendall(str(len(b)).encode() + b":" + b + b",")

    def wait(self, event, seconds):
        """Whether `event` comes within `seconds` (events before it are passed over)."""
        return self.wait_any((event,), seconds) is not None

    def wait_any(self, events, seconds):
        """The first of `events` to come within `seconds`, or None."""
        import socket
        deadline = time.time() + seconds
        self.s.settimeout(0.2)
        while time.time() < deadline:
            while b":" in self.buf:
                n, rest = self.buf.split(b":", 1)
                if len(rest) < int(n) + 1:
                    break
                msg, self.buf = json.loads(rest[:int(n)]), rest[int(n) + 1:]
                if msg.get("type") in events:
                    return msg["type"]
            try:
                chunk = self.s.recv(4096)
                if not chunk:
                    return None
                self.buf += chunk
            except socket.timeout:
                pass
        return None

    def keys(self, digits):
        for d in digits:
            self.send("sndcode", d)
            time.sleep(0.25)


def driven_call(name, port, rtp, tone, uri, seconds, ctrl):
    """A phone the test dials and drives through ctrl_tcp: (process, dir, ctrl, answered)."""
    p, d = phone(name, port, rtp, tone, uri, seconds, ctrl=ctrl)
    c = Ctrl(ctrl)
    c.send("dial", uri)
    return p, d, c, c.wait("CALL_ESTABLISHED", 10)


def heard(d, freqs, start=None, end=None):
    files = glob.glob(os.path.join(d, "*-dec.wav"))
    if not files:
        return {hz: 0.0 for hz in freqs}, 0
    return shares(max(files, key=os.path.getsize), freqs, start, end)


def show(who, h, n):
    print(f"{who} over {n} blocks:", {k: round(v, 3) for k, v in h.items()})


class SipMetrics:
    """The server's `switchboard_sip_*` metrics at one moment: `m(name)` sums a series
    (name with labels, as Prometheus prints it); `lines` are the raw lines."""

    def __init__(self, base):
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as r:
            text = r.read().decode()
        self.lines = [l for l in text.splitlines() if l.startswith("switchboard_sip_")]
        print("metrics:", self.lines)

    def __call__(self, name):
        return sum(float(l.rsplit(" ", 1)[1]) for l in self.lines if l.split(" ")[0] == name)
