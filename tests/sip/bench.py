"""The SIP gateway's CPU per call: N light phones (raw SIP and RTP from this one Python
process: G.711 frames from a table, no resampling, each its own tone) in one room; the
server's CPU time (utime + stime, /proc) over a window when all are connected, divided by
calls and by 20 ms frames, next to this harness's own CPU. `--quiet K`: only K of the
phones talk, the rest send silence (as in a real call, where few speak at once).
Usage (root, in a namespace of its own; bounded: N calls for SECONDS, then BYE):
  unshare -n bash -c 'ip link set lo up && python3 tests/sip/bench.py target/release/switchboard 20 20'
"""
import math
import os
import re
import select
import socket
import subprocess
import sys
import tempfile
import time

BIN, N, SECONDS = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
TALKERS = int(sys.argv[sys.argv.index("--quiet") + 1]) if "--quiet" in sys.argv else N
T = tempfile.mkdtemp(prefix="sb-sipbench-")
SIP = 5060
TICK = os.sysconf("SC_CLK_TCK")


def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def ulaw(sample):
    """G.711 mu-law of one 16-bit sample."""
    sign = 0x80 if sample < 0 else 0
    x = min(abs(sample), 32635) + 132
    exp = max(0, x.bit_length() - 8)
    return ~(sign | (exp << 4) | ((x >> (exp + 3)) & 0x0F)) & 0xFF


def frames(hz, talking):
    """One second of 20 ms mu-law frames of a tone (or of silence)."""
    out = []
    for n in range(50):
        out.append(bytes(ulaw(int(8000 * math.sin(2 * math.pi * hz * (n * 160 + i) / 8000)) if talking else 0)
                         for i in range(160)))
    return out


class Phone:
    """One call: INVITE, ACK the 200, RTP every 20 ms, BYE at the end."""

    def __init__(self, i):
        self.i = i
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind(("127.0.0.1", 0))
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", 0))
        self.sip_port, self.rtp_port = self.sip.getsockname()[1], self.rtp.getsockname()[1]
        self.call_id = f"bench{i}-{time.time_ns()}"
        self.tag = f"t{i}"
        self.to_tag = None
        self.remote = None
        self.frames = frames(300 + 37 * i, i < TALKERS)
        self.seq = self.ts = 0
        self.ssrc = 0x1000 + i
        self.received = 0

    def request(self, method, cseq, body="", uri=None):
        uri = uri or f"sip:bench@127.0.0.1:{SIP}"
        to = f"<sip:bench@127.0.0.1:{SIP}>" + (f";tag={self.to_tag}" if self.to_tag else "")
        msg = (f"{method} {uri} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{self.sip_port};branch=z9hG4bK{self.i}x{cseq}{method};rport\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:p{self.i}@127.0.0.1:{self.sip_port}>;tag={self.tag}\r\n"
               f"To: {to}\r\nCall-ID: {self.call_id}\r\nCSeq: {cseq} {method}\r\n"
               f"Contact: <sip:p{self.i}@127.0.0.1:{self.sip_port}>\r\n"
               + ("Content-Type: application/sdp\r\n" if body else "")
               + f"Content-Length: {len(body)}\r\n\r\n{body}")
        self.sip.sendto(msg.encode(), ("127.0.0.1", SIP))

    def invite(self):
        sdp = (f"v=0\r\no=- {self.i} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               f"m=audio {self.rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
               "a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\n")
        self.request("INVITE", 1, sdp)

    def on_sip(self):
        msg = self.sip.recv(65535).decode(errors="replace")
        if msg.startswith("SIP/2.0 200") and "INVITE" in msg.split("CSeq:", 1)[1].split("\r\n", 1)[0]:
            self.to_tag = re.search(r"^To:.*;tag=([^;\r\n]+)", msg, re.M | re.I).group(1)
            port = int(re.search(r"m=audio (\d+)", msg).group(1))
            ip = re.search(r"c=IN IP4 ([\d.]+)", msg).group(1)
            self.remote = (ip, port)
            self.request("ACK", 1)
        elif msg.startswith(("BYE", "OPTIONS", "INVITE", "UPDATE")):
            print(f"phone {self.i}: unexpected request from the gateway: {msg.split(' ', 1)[0]}")

    def send_frame(self):
        if not self.remote:
            return
        payload = self.frames[self.seq % 50]
        header = bytes([0x80, 0, self.seq >> 8 & 0xFF, self.seq & 0xFF]) + self.ts.to_bytes(4, "big") \
            + self.ssrc.to_bytes(4, "big")
        self.rtp.sendto(header + payload, self.remote)
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + 160) & 0xFFFFFFFF

    def bye(self):
        if self.to_tag:
            self.request("BYE", 2)


def pump(phones, seconds, on_tick=None):
    """Serve every phone's sockets, one RTP frame each every 20 ms, for `seconds`."""
    by_fd = {}
    for p in phones:
        by_fd[p.sip.fileno()] = (p, "sip")
        by_fd[p.rtp.fileno()] = (p, "rtp")
    start = time.monotonic()
    next_tick = start
    while time.monotonic() - start < seconds:
        timeout = max(0.0, next_tick - time.monotonic())
        ready, _, _ = select.select(list(by_fd), [], [], timeout)
        for fd in ready:
            p, kind = by_fd[fd]
            if kind == "sip":
                p.on_sip()
            else:
                p.rtp.recv(2048)
                p.received += 1
        if time.monotonic() >= next_tick:
            for p in phones:
                p.send_frame()
            next_tick += 0.02


def main():
    srv = subprocess.Popen([BIN, "--http", "127.0.0.1:0", "--rtc-port", "24000", "--workers", "2",
                            "--sip-listen", f"127.0.0.1:{SIP}", "--sip-rtp-ports", "25000-25199",
                            "--log", "warn,sip::inbound=info"],
                           stdout=subprocess.PIPE, stderr=open(os.path.join(T, "server.log"), "w"), text=True)
    while not re.search(r"open http://", srv.stdout.readline()):
        pass
    phones = [Phone(i) for i in range(N)]
    for p in phones:
        p.invite()
        pump(phones, 0.2)
    pump(phones, 4)  # every call set up, buffers settled
    me = os.getpid()
    s0, h0, t0 = cpu(srv.pid), cpu(me), time.time()
    pump(phones, SECONDS)
    s1, h1, t1 = cpu(srv.pid), cpu(me), time.time()
    for p in phones:
        p.bye()
    pump(phones, 1)
    srv.terminate()
    srv.wait()
    log = open(os.path.join(T, "server.log")).read()
    answered = log.count("call answered")
    wall = t1 - t0
    server = s1 - s0
    frames_total = N * wall / 0.02
    heard = sum(p.received for p in phones) / max(1, N) / (wall + 5.2 + 0.2 * N) * 0.02
    print(f"calls answered {answered} of {N} ({TALKERS} talking); packets heard per phone per frame ≈ {heard:.2f}")
    print(f"{N} phones in one room, {wall:.1f} s measured: server CPU {server:.2f} s = "
          f"{100 * server / wall:.1f} % of one core, {100 * server / wall / N:.2f} % per call, "
          f"{1e6 * server / frames_total:.1f} µs per call and 20 ms frame (both directions); "
          f"the harness: {100 * (h1 - h0) / wall:.1f} % of one core")


main()
