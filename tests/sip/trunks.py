"""Who may call, and calls placed through the REST API, end to end with real phones
(Debian's baresip) and raw SIP requests, inside a network namespace with only loopback
(run.sh). Each address 127.0.0.N stands for a different host.

  an INVITE from no trunk's network and no SIP user gets no answer at all;
  a trunk's network calling a number the trunk does not have: 404;
  a trunk with credentials challenges with 407: no answer is 407, a wrong one 403, and a
  baresip with the right ones gets in;
  a trunk call joins the room of the dispatch rules, the caller's number masked;
  a SIP user REGISTERs with digest (a wrong password is 403), then is called through the
  REST API (wait until answered, DTMF after answer): it joins the room, hears the room,
  receives the digits (RFC 4733); the API lists, reads and hangs it up;
  an outbound call through a trunk reaches the trunk's address from the trunk's number;
  what the API may dial: a name with CRLF (header injection) or an identity already in the
  room is refused, a trunk calls only its outbound_allow prefixes, a sip: URI only the
  sip_outbound_hosts; one API key has at most sip_key_max_calls at once and
  sip_key_calls_per_minute a minute (429, counted);
  a call nobody can answer fails with 409 not_answered;
  webhooks sip_call_started/answered/ended (cause api) and sip_dtmf arrive;
  the metrics count dropped requests, refused credentials and registrations.
"""
import hashlib
import http.server
import json
import os
import re
import socket
import threading
import time
import urllib.request

from phones import T, TEST_SECRET, Ctrl, SipMetrics, heard, participants, phone, show, start_server, token

SIP = 5300
HOOK = 5390

# A second API key whose SIP calls the limits below are tried with.
LIMITED = ("limited", "limited-key-secret-0123456789")

CONF = f"""webhook_urls = ["http://127.0.0.1:{HOOK}/hook"]
sip_outbound_hosts = ["127.0.0.9"]
sip_key_max_calls = 2
sip_key_calls_per_minute = 4

[[sip_rules]]
room = "trunkroom"

[[sip_trunks]]
name = "carrier"
networks = ["127.0.0.2"]
numbers = ["+15550100"]

[[sip_trunks]]
name = "secure"
networks = ["127.0.0.3/32"]
username = "carrier"
password = "trunkpw"

[[sip_trunks]]
name = "out"
networks = ["127.0.0.4"]
outbound_address = "127.0.0.4:5340"
outbound_number = "+15550199"
outbound_allow = ["+1555"]

[[sip_users]]
username = "alice"
password = "alicepw"
"""

HOOKS = []


class Hooks(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        HOOKS.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass


def responses(s, wait):
    """What arrives on socket `s` within `wait` seconds (a TCP stream's end stops early)."""
    s.settimeout(0.2)
    got, deadline = [], time.time() + wait
    while time.time() < deadline:
        try:
            data = s.recv(65535).decode(errors="replace")
        except socket.timeout:
            continue
        if s.type == socket.SOCK_STREAM and not data:
            break
        got.append(data)
    return got


def raw_invite(src, to, caller, proxy_auth=None, wait=2.0, via_params=";rport", tcp=False):
    """Send one INVITE from `src` (an address of this host), over UDP or over a TCP
    connection; the responses within `wait` s. `via_params` follow the top Via's branch."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
    s.bind((src, 0))
    if tcp:
        s.connect(("127.0.0.1", SIP))
    port = s.getsockname()[1]
    # Where answers to a forged Via `received=` would go: listen there too (same port).
    claimed = re.search(r";received=([0-9.]+)", via_params)
    mirror = None
    if claimed and not tcp:
        mirror = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        mirror.bind((claimed.group(1), port))
        mirror.settimeout(0.1)
    sdp = ("v=0\r\no=- 1 1 IN IP4 {0}\r\ns=-\r\nc=IN IP4 {0}\r\nt=0 0\r\n"
           "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n").format(src)
    branch = f"z9hG4bK{time.time_ns()}"
    uri = f"sip:{to}@127.0.0.1:{SIP}"
    msg = (f"INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/{'TCP' if tcp else 'UDP'} {src}:{port};branch={branch}{via_params}\r\n"
           f"Max-Forwards: 70\r\nFrom: <sip:{caller}@{src}>;tag=t{port}\r\nTo: <{uri}>\r\n"
           f"Call-ID: c{time.time_ns()}@{src}\r\nCSeq: 1 INVITE\r\nContact: <sip:{caller}@{src}:{port}>\r\n"
           + (f"Proxy-Authorization: {proxy_auth(uri)}\r\n" if proxy_auth else "")
           + f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}")
    if tcp:
        s.sendall(msg.encode())
    else:
        s.sendto(msg.encode(), ("127.0.0.1", SIP))
    got = responses(s, wait)
    if mirror:
        try:
            while True:
                got.append(mirror.recv(65535).decode(errors="replace"))
        except socket.timeout:
            pass
        mirror.close()
    s.close()
    return got


def offerless_call(base, video=False):
    """An INVITE without SDP from the carrier trunk: our offer comes in the 200, the
    answer goes in the ACK (PCMA only; with `video`, VP8 too, as a video system with a
    delayed offer answers). Then RTP injection: the phone sends from its SDP address, and
    an injector on the phone's own IP (another port: a shared NAT) sprays packets with
    consecutive sequence numbers; with `video` the endpoint sends VP8 keyframes as well.
    What the test saw: (offer, members, codec, bye, packets the phone heard during the
    injection, packets the injector heard, the kinds of the caller's tracks in the room)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.2", 0))
    port = s.getsockname()[1]
    uri = f"sip:+15550100@127.0.0.1:{SIP}"
    call_id, tag = f"offerless{time.time_ns()}", "ol1"
    frm = f"<sip:+15557654321@127.0.0.2:{port}>;tag={tag}"

    def send(method, cseq, to, body="", ruri=uri):
        s.sendto((f"{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:{port};branch=z9hG4bK{method}{cseq};rport\r\n"
                  f"Max-Forwards: 70\r\nFrom: {frm}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
                  f"Contact: <sip:+15557654321@127.0.0.2:{port}>\r\n"
                  + ("Content-Type: application/sdp\r\n" if body else "")
                  + f"Content-Length: {len(body)}\r\n\r\n{body}").encode(), ("127.0.0.1", SIP))

    def final(wait=5.0):
        s.settimeout(0.2)
        deadline = time.time() + wait
        while time.time() < deadline:
            try:
                m = s.recv(65535).decode(errors="replace")
            except socket.timeout:
                continue
            if m.startswith("SIP/2.0") and not m.startswith("SIP/2.0 1"):
                return m
        return ""

    send("INVITE", 1, f"<{uri}>")
    ok = final()
    if not ok.startswith("SIP/2.0 200"):
        return ok[:200], [], None, None, 0, 0, []
    to = re.search(r"^To: (.*)\r$", ok, re.M).group(1)
    contact = re.search(r"^Contact: <([^>]+)>", ok, re.M).group(1)
    offer = ok.split("\r\n\r\n", 1)[1]
    answer = ("v=0\r\no=- 7 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n"
              "m=audio 40002 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n")
    vp8 = re.search(r"^a=rtpmap:(\d+) VP8/90000", offer, re.M)
    ours_video = re.search(r"^m=video (\d+)", offer, re.M)
    if video and vp8 and ours_video:
        answer += (f"m=video 40004 RTP/AVP {vp8.group(1)}\r\na=rtpmap:{vp8.group(1)} VP8/90000\r\n"
                   "a=rtcp-fb:* nack pli\r\na=sendrecv\r\n")
    send("ACK", 1, to, answer, contact)
    ours = int(re.search(r"^m=audio (\d+)", offer, re.M).group(1))
    camera = None
    if video and vp8 and ours_video:
        camera = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        camera.bind(("127.0.0.2", 40004))
        camera.setblocking(False)
    phone_rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    phone_rtp.bind(("127.0.0.2", 40002))
    injector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    injector.bind(("127.0.0.2", 40010))
    for sock in (phone_rtp, injector):
        sock.setblocking(False)

    def rtp(seq, ssrc):
        return bytes([0x80, 8]) + seq.to_bytes(2, "big") + (seq * 160).to_bytes(4, "big") \
            + ssrc.to_bytes(4, "big") + b"\xd5" * 160

    def drain(sock):
        n = 0
        while True:
            try:
                sock.recv(2048)
                n += 1
            except BlockingIOError:
                return n

    def keyframe(i):
        # VP8 (RFC 7741): descriptor S=1; a key frame's tag, start code and 640 x 360.
        frame = bytes([0x10, 0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a]) + (640).to_bytes(2, "little") \
            + (360).to_bytes(2, "little") + bytes(200)
        return bytes([0x80, 0x80 | int(vp8.group(1))]) + (i & 0xFFFF).to_bytes(2, "big") \
            + (i * 3000).to_bytes(4, "big") + (0x2222).to_bytes(4, "big") + frame

    heard = injected_heard = 0
    for i in range(100):  # 2 s: the phone alone for 1 s, then the injector too
        phone_rtp.sendto(rtp(i, 0x1111), ("127.0.0.1", ours))
        if camera and i % 3 == 0:
            camera.sendto(keyframe(i // 3), ("127.0.0.1", int(ours_video.group(1))))
            drain(camera)
        if i >= 50:
            injector.sendto(rtp(30000 + i, 0x6666), ("127.0.0.1", ours))
        time.sleep(0.02)
        got = drain(phone_rtp)
        if i >= 50:
            heard += got
            injected_heard += drain(injector)
    phone_rtp.close()
    injector.close()
    if camera:
        camera.close()
    everyone = participants(base, "trunkroom")
    members = sorted(m["name"] for m in everyone)
    kinds = sorted(t["kind"] for m in everyone if m["name"].endswith("4321") for t in m.get("tracks", []))
    calls = rest(base, "GET", "/sip/calls?room=trunkroom")[1]["calls"]
    codec = next((c.get("codec") for c in calls if c["from"].endswith("4321") and c["state"] == "answered"), None)
    send("BYE", 2, to, "", contact)
    bye = final()
    s.close()
    return offer, members, codec, bye[:20], heard, injected_heard, kinds


def raw_out_of_dialog(src, method):
    """One OPTIONS, BYE or INFO (no dialog) from `src`: the responses within 1.5 s."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    port = s.getsockname()[1]
    uri = f"sip:x@127.0.0.1:{SIP}"
    msg = (f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {src}:{port};branch=z9hG4bK{time.time_ns()};rport\r\n"
           f"Max-Forwards: 70\r\nFrom: <sip:probe@{src}>;tag=p{port}\r\nTo: <{uri}>" + (";tag=gone" if method != "OPTIONS" else "")
           + f"\r\nCall-ID: probe{time.time_ns()}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n")
    s.sendto(msg.encode(), ("127.0.0.1", SIP))
    got = responses(s, 1.5)
    s.close()
    return got


def raw_register(auth=None, contact_port=5390, cseq=1, call_id="reg-raw"):
    """One REGISTER for alice from 127.0.0.1 (Authorization `auth(request_uri)` if
    given): its final answer."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    uri = f"sip:127.0.0.1:{SIP}"
    msg = (f"REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{time.time_ns()};rport\r\n"
           f"Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=r{port}\r\nTo: <sip:alice@127.0.0.1>\r\n"
           f"Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:alice@127.0.0.1:{contact_port}>\r\n"
           f"Expires: 60\r\n" + (f"Authorization: {auth(uri)}\r\n" if auth else "") + "Content-Length: 0\r\n\r\n")
    s.sendto(msg.encode(), ("127.0.0.1", SIP))
    got = [m for m in responses(s, 1.0) if m.startswith("SIP/2.0") and not m.startswith("SIP/2.0 1")]
    s.close()
    return got[0] if got else ""


def digest(user, password, challenge, uri, method="INVITE", nc=1):
    """The (Proxy-)Authorization for `challenge` (a 401/407's authenticate value)."""
    nonce = re.search(r'nonce="([^"]+)"', challenge).group(1)
    md5 = lambda x: hashlib.md5(x.encode()).hexdigest()
    ha1, ha2 = md5(f"{user}:switchboard:{password}"), md5(f"{method}:{uri}")
    resp = md5(f"{ha1}:{nonce}:{nc:08x}:abc:auth:{ha2}")
    return (f'Digest username="{user}", realm="switchboard", nonce="{nonce}", uri="{uri}", '
            f'response="{resp}", algorithm=MD5, qop=auth, nc={nc:08x}, cnonce="abc"')


def status_of(responses):
    finals = [r.split(" ", 2)[1] for r in responses if r.startswith("SIP/2.0") and not r.startswith("SIP/2.0 1")]
    return finals[0] if finals else None


def rest(base, method, path, body=None, tok=None):
    tok = tok or token({"sipCall": True})
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{base}/api/v1{path}", data=data, method=method,
                                 headers={"authorization": f"Bearer {tok}", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=40) as r:
            text = r.read()
            return r.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def log_of(name):
    return re.sub(r"\x1b\[[0-9;]*m", "", open(os.path.join(T, f"{name}.log"), errors="replace").read())


def wait_for(pred, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.3)
    return pred()


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
    return 0


def flood_invites(n):
    """`n` INVITEs from a stranger (127.0.0.5), each a new transaction, paced so that
    most get past the kernel's socket buffer; then a pause for the gateway to catch up."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.5", 0))
    port = s.getsockname()[1]
    for k in range(n):
        s.sendto((f"INVITE sip:+15550100@127.0.0.1:{SIP} SIP/2.0\r\n"
                  f"Via: SIP/2.0/UDP 127.0.0.5:{port};branch=z9hG4bKflood{k}\r\n"
                  f"From: <sip:m@127.0.0.5>;tag={k}\r\nTo: <sip:+15550100@127.0.0.1>\r\n"
                  f"Call-ID: flood{k}@127.0.0.5\r\nCSeq: 1 INVITE\r\n"
                  f"Contact: <sip:m@127.0.0.5:{port}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode(),
                 ("127.0.0.1", SIP))
        if k % 200 == 0:
            time.sleep(0.005)
    s.close()
    time.sleep(3)


def main():
    hooks = http.server.ThreadingHTTPServer(("127.0.0.1", HOOK), Hooks)
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    server, base = start_server(CONF, ["--rtc-port", "24100", "--workers", "1",
                                       "--sip-listen", f"127.0.0.1:{SIP}", "--sip-rtp-ports", "25100-25199"],
                                env={"SWITCHBOARD_KEYS": f"devkey:{TEST_SECRET},{LIMITED[0]}:{LIMITED[1]}"})
    failures = []

    def check(ok, what):
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)

    try:
        # Who may call.
        r = raw_invite("127.0.0.5", "+15550100", "mallory")
        check(r == [], f"an INVITE from no trunk and no user is not answered at all: {r[:1]}")
        # A stranger claiming the carrier's address in its Via (received=, which the
        # transport passes on when the Via's own address is the real one) is a stranger.
        dropped = SipMetrics(base)('switchboard_sip_requests_dropped_total{reason="source"}')
        r = raw_invite("127.0.0.5", "+15550100", "mallory", via_params=";received=127.0.0.2")
        check(r == [], f"a forged Via received= (the carrier's address) over UDP: no answer: {r[:1]}")
        r = raw_invite("127.0.0.5", "+15550100", "mallory", via_params=";received=127.0.0.2", tcp=True)
        check(r == [], f"a forged Via received= over TCP: no answer: {r[:1]}")
        now = SipMetrics(base)('switchboard_sip_requests_dropped_total{reason="source"}')
        check(now >= dropped + 2, f"both forged requests are counted as dropped ({dropped} -> {now})")
        # A flood of strangers' INVITEs, each a new transaction: dropped before it is parsed
        # past a budget (per address and for all strangers), counted, the server's memory
        # bounded (before the budget: +211 MB, the backlog waiting in rsipstack's unbounded
        # channels), and the carrier's calls below still answered.
        metric = lambda reason: SipMetrics(base)(f'switchboard_sip_requests_dropped_total{{reason="{reason}"}}')
        before, flooded = rss_mb(server.pid), metric("flood")
        flood_invites(60_000)
        grown, flooded = rss_mb(server.pid) - before, metric("flood") - flooded
        check(flooded >= 30_000 and grown < 30,
              f"60,000 stranger INVITEs: {flooded:.0f} dropped before parsing, memory grew {grown} MB")
        # A stranger naming a SIP user is challenged (users call from anywhere): one 401,
        # never retransmitted, no larger than the INVITE - no amplifier for a spoofed source.
        r = raw_invite("127.0.0.5", "lobby", "alice", wait=8.0)
        check(len(r) == 1 and r[0].startswith("SIP/2.0 401") and len(r[0]) < 600,
              f"an INVITE naming a user from anywhere: one 401 in 8 s, {len(r[0]) if r else 0} bytes ({len(r)} answers)")
        # Outside a dialog, strangers get nothing either; a trunk's address is answered.
        for method in ("OPTIONS", "BYE", "INFO"):
            r = raw_out_of_dialog("127.0.0.5", method)
            check(r == [], f"{method} from a stranger: no answer ({r[:1]})")
        r = raw_out_of_dialog("127.0.0.2", "OPTIONS")
        check(status_of(r) == "200", f"OPTIONS from the carrier's network: 200 ({status_of(r)})")
        r = raw_invite("127.0.0.2", "+15550111", "+15551234567")
        check(status_of(r) == "404", f"a trunk calling a number it does not have: 404 (got {status_of(r)})")
        r = raw_invite("127.0.0.3", "777", "carrier")
        challenge = next((re.search(r"Proxy-Authenticate: (.*)\r\n", x).group(1) for x in r
                          if x.startswith("SIP/2.0 407")), None)
        check(challenge is not None and "realm=\"switchboard\"" in challenge,
              f"a trunk with credentials is challenged: 407 with Proxy-Authenticate ({status_of(r)})")
        if challenge:
            r = raw_invite("127.0.0.3", "777", "carrier", lambda uri: digest("carrier", "guess", challenge, uri))
            check(status_of(r) == "403", f"a wrong answer to the challenge: 403 (got {status_of(r)})")

        # Digest answers: one captured and sent again (another Contact) is refused, and so
        # is one computed over another URI than the request's.
        first = raw_register()
        challenge = re.search(r"WWW-Authenticate: (.*)\r\n", first)
        check(first.startswith("SIP/2.0 401") and challenge, f"REGISTER is challenged: {first[:40]!r}")
        if challenge:
            ch = challenge.group(1)
            captured = digest("alice", "alicepw", ch, f"sip:127.0.0.1:{SIP}", "REGISTER")
            ok = raw_register(lambda uri: captured, 5391, 2)
            check(ok.startswith("SIP/2.0 200"), f"the right answer registers: {ok[:40]!r}")
            replay = raw_register(lambda uri: captured, 6666, 3)
            check(replay.startswith("SIP/2.0 403") and "6666" not in replay,
                  f"the same answer replayed with another Contact: 403 ({replay[:40]!r})")
            nc2 = raw_register(lambda uri: digest("alice", "alicepw", ch, uri, "REGISTER", nc=2), 5391, 4)
            check(nc2.startswith("SIP/2.0 200"), f"the nonce again with a higher nc: 200 ({nc2[:40]!r})")
            other_uri = raw_register(lambda uri: digest("alice", "alicepw", ch, "sip:elsewhere@127.0.0.1", "REGISTER", nc=3), 5391, 5)
            check(other_uri.startswith("SIP/2.0 403"), f"an answer over another URI: 403 ({other_uri[:40]!r})")
            raw_register(lambda uri: digest("alice", "alicepw", ch, uri, "REGISTER", nc=4), 5391, 6)

        # A trunk call (from the carrier's network, to its number) and one with credentials.
        t, dt = phone("trunkcall", 5310, "10300-10319", 440, None, 40,
                      ctrl=4480, account="<sip:+15551234567@127.0.0.2:5310>;regint=0;audio_codecs=PCMU",
                      ip="127.0.0.2")
        ct = Ctrl(4480)
        ct.send("dial", f"sip:+15550100@127.0.0.1:{SIP}")
        check(ct.wait("CALL_ESTABLISHED", 10), "a call from the carrier trunk is answered")
        s, _ = phone("secure", 5320, "10320-10339", 2000, f"sip:777@127.0.0.1:{SIP}", 6,
                     account="<sip:carrier@127.0.0.3:5320>;auth_user=carrier;auth_pass=trunkpw;regint=0;audio_codecs=PCMU",
                     ip="127.0.0.3")
        names = wait_for(lambda: sorted(m["name"] for m in participants(base, "trunkroom"))
                         if len(participants(base, "trunkroom")) == 2 else None, 8)
        check(names == ["☎ +•••••••4567", "☎ carrier"],
              f"both trunk calls are in the room of the rules, numbers masked: {names}")
        time.sleep(0.5)
        ct.keys("7")
        s.wait(timeout=20)

        # An offerless INVITE: we offer (PCMU, PCMA, telephone-event), the ACK answers PCMA.
        dropped = SipMetrics(base)('switchboard_sip_rtp_dropped_total{reason="source"}')
        offer, members, codec, bye, phone_heard, injected, kinds = offerless_call(base)
        now_dropped = SipMetrics(base)('switchboard_sip_rtp_dropped_total{reason="source"}')
        check(phone_heard >= 30 and injected == 0 and now_dropped - dropped >= 45,
              f"RTP injected from another port of the phone's IP: the phone keeps hearing the room "
              f"({phone_heard} packets in 1 s), the injector hears nothing ({injected}), its packets are dropped "
              f"({now_dropped - dropped})")
        check("m=audio" in offer and " 0 8 101" in offer and "☎ +•••••••4321" in members and codec == "PCMA"
              and bye.startswith("SIP/2.0 200"),
              f"an offerless INVITE gets our offer in the 200, the ACK's answer (PCMA) is used: "
              f"{members} {codec} {bye!r} {offer[:120]!r}")
        check("m=video" in offer and kinds == ["audio"],
              f"our offer has video too; a phone that answers audio only publishes audio: {kinds}")
        # A video system with a delayed offer: its ACK answers our video (VP8), and its
        # participant publishes the video it sends.
        offer, members, codec, bye, _, _, kinds = offerless_call(base, video=True)
        check(codec == "PCMA" and kinds == ["audio", "video"] and bye.startswith("SIP/2.0 200"),
              f"an offerless INVITE whose ACK answers our video: the endpoint's video is a track "
              f"in the room ({kinds}, {codec}, {bye!r})")
        # A SIP user registers: a wrong password first (403), then the right one.
        bad, _ = phone("wrongpw", 5350, "10350-10359", 440, None, 4,
                       account=f"<sip:alice@127.0.0.1:{SIP}>;auth_pass=nope;regint=60;audio_codecs=PCMU")
        bad.wait(timeout=15)
        check("403" in log_of("wrongpw"), "REGISTER with a wrong password: 403")
        a, da = phone("alice", 5330, "10330-10349", 1000, None, 30,
                      account=f"<sip:alice@127.0.0.1:{SIP}>;auth_pass=alicepw;regint=60;answermode=auto;audio_codecs=PCMU")
        registered = wait_for(lambda: "200 OK" in log_of("alice") or None, 8)
        check(bool(registered), "alice registers with digest (200)")

        # The REST API calls her into the room, waits for the answer, types 1 and # to her.
        st, call = rest(base, "POST", "/sip/calls",
                        {"room": "trunkroom", "to": "alice", "dtmf": "1#", "wait_until_answered": True})
        check(st == 201 and call and call["state"] == "answered" and call["direction"] == "outbound",
              f"POST /sip/calls to the registered user: 201 answered ({st} {call})")
        cid = call["id"] if call else "none"
        members = participants(base, "trunkroom")
        names = sorted(m["name"] for m in members)
        check("☎ alice" in names, f"alice is in the room: {names}")
        meta = [(m["kind"], json.loads(m["metadata"] or "{}").get("sip", {}).get("direction")) for m in members]
        check(sorted(meta) == [("sip", "inbound"), ("sip", "outbound")],
              f"phones are participants of kind sip, their call in the metadata: {meta}")
        st, listed = rest(base, "GET", "/sip/calls?room=trunkroom")
        dirs = sorted((c["direction"], c["state"]) for c in (listed or {}).get("calls", []))
        check(st == 200 and ("outbound", "answered") in dirs and ("inbound", "answered") in dirs,
              f"GET /sip/calls lists inbound and outbound calls: {dirs}")
        time.sleep(1.5)
        st, _ = rest(base, "POST", f"/sip/calls/{cid}/dtmf", {"digits": "5"})
        check(st == 202, f"POST …/dtmf: 202 ({st})")
        time.sleep(3)
        st, _ = rest(base, "DELETE", f"/sip/calls/{cid}")
        check(st == 204, f"DELETE hangs up: 204 ({st})")
        ended = wait_for(lambda: (lambda c: c if c and c.get("state") == "ended" else None)(
            rest(base, "GET", f"/sip/calls/{cid}")[1]), 5)
        check(ended and ended["state"] == "ended" and ended["end_cause"] == "api",
              f"the call reads as ended by the API: {ended}")
        q = (ended or {}).get("quality") or {}
        check(q and q["loss"] < 0.02 and q["jitter_ms"] < 20 and q["mos"] > 4.0,
              f"the call's audio quality (loopback: no loss, a high score): {q}")
        a.terminate()
        a.wait(timeout=10)
        alog = log_of("alice")
        keys = re.findall(r"received event: '(.)' \(end=0\)", alog) or re.findall(r"received event: '(.)'", alog)
        got = "".join(dict.fromkeys(keys)) if keys else ""
        check(all(k in keys for k in "1#5"), f"alice received the digits 1 # 5 as RFC 4733 events: {keys}")
        ha, na = heard(da, (440, 1000), 1.0, 4.0)
        show("alice (sends 1000 Hz), in the room with the trunk call (440 Hz)", ha, na)
        check(na > 10 and ha[440] > 0.5 and ha[1000] < 0.05, f"alice hears the room and not herself: {ha}")

        # Out through a trunk: the INVITE goes to the trunk's address, from its number.
        b, _ = phone("bob", 5340, "10360-10379", 440, None, 20,
                     account="<sip:+15550123@127.0.0.4:5340>;regint=0;answermode=auto;audio_codecs=PCMU", ip="127.0.0.4")
        time.sleep(1)
        st, call = rest(base, "POST", "/sip/calls",
                        {"room": "trunkroom", "to": "+15550123", "trunk": "out", "wait_until_answered": True})
        check(st == 201 and call and call["state"] == "answered" and call["from"] == "+15550199",
              f"a call out through the trunk is answered: {st} {call}")
        blog = log_of("bob")
        check("+15550199" in blog, "the trunk's phone sees the trunk's number as the caller")
        if call and "id" in call:
            rest(base, "DELETE", f"/sip/calls/{call['id']}")
        b.terminate()
        st, call = rest(base, "POST", "/sip/calls",
                        {"room": "trunkroom", "to": "sip:nobody@127.0.0.9:5399", "ring_timeout": 3,
                         "wait_until_answered": True})
        check(st == 409 and call["code"] == "not_answered", f"a call nobody answers: 409 not_answered ({st} {call})")
        # What the API may dial, and how much.
        st, body = rest(base, "POST", "/sip/calls", {"room": "trunkroom", "to": "+15550123", "trunk": "out",
                                                      "name": "Ann\r\nP-Asserted-Identity: <sip:+15550000@evil>"})
        check(st == 400 and body["code"] == "invalid", f"a name with CRLF (header injection): 400 ({st} {body})")
        taken = participants(base, "trunkroom")[0]["identity"]
        st, body = rest(base, "POST", "/sip/calls", {"room": "trunkroom", "to": "+15550123", "trunk": "out",
                                                      "identity": taken})
        check(st == 409 and body["code"] == "conflict" and any(m["identity"] == taken for m in participants(base, "trunkroom")),
              f"an identity already in the room ({taken}): 409, and its session stays ({st} {body})")
        st, body = rest(base, "POST", "/sip/calls", {"room": "trunkroom", "to": "+449001234567", "trunk": "out"})
        check(st == 403 and "outbound_allow" in body["message"], f"a number outside the trunk's outbound_allow: 403 ({st} {body})")
        st, body = rest(base, "POST", "/sip/calls", {"room": "trunkroom", "to": "sip:premium@127.0.0.8:5060"})
        check(st == 403 and "sip_outbound_hosts" in body["message"], f"a sip: URI to an unlisted host: 403 ({st} {body})")
        limited = token({"sipCall": True}, LIMITED)
        ringing = []
        for _ in range(2):
            st, call = rest(base, "POST", "/sip/calls", {"room": "trunkroom", "to": "sip:nobody@127.0.0.9:5399"}, limited)
            ringing.append(call.get("id") if st == 201 else None)
        st, body = rest(base, "POST", "/sip/calls", {"room": "trunkroom", "to": "sip:nobody@127.0.0.9:5399"}, limited)
        check(None not in ringing and st == 429 and body["code"] == "too_many_calls",
              f"a key's third call at once (sip_key_max_calls 2): 429 ({ringing} {st} {body})")
        st2, other = rest(base, "POST", "/sip/calls", {"room": "trunkroom", "to": "sip:nobody@127.0.0.9:5399"})
        check(st2 == 201, f"another key is not held back by it: {st2} {other}")
        for cid2 in ringing + [other.get("id")]:
            if cid2:
                rest(base, "DELETE", f"/sip/calls/{cid2}")
        over = lambda c: (rest(base, "GET", f"/sip/calls/{c}")[1] or {}).get("state") == "ended"
        wait_for(lambda: all(over(c) for c in ringing if c), 10)
        started = []
        for _ in range(3):
            st, call = rest(base, "POST", "/sip/calls", {"room": "trunkroom", "to": "sip:nobody@127.0.0.9:5399"}, limited)
            started.append(st)
            if st == 201:
                rest(base, "DELETE", f"/sip/calls/{call['id']}")
                wait_for(lambda: over(call["id"]), 10)
        check(started[:2] == [201, 201] and started[2] == 429,
              f"a key's fifth call within a minute (sip_key_calls_per_minute 4): 429 ({started})")
        m = SipMetrics(base)
        check(m('switchboard_sip_outbound_refused_total{reason="concurrent"}') == 1
              and m('switchboard_sip_outbound_refused_total{reason="rate"}') == 1,
              "refused calls are counted by reason")

        ct.send("hangup")
        t.terminate()
        t.wait(timeout=10)

        # Webhooks.
        time.sleep(1.5)
        events = [(h["event"], h.get("sip_call", {}).get("id"), h.get("digit"),
                   h.get("sip_call", {}).get("end_cause")) for h in HOOKS if h["event"].startswith("sip_")]
        mine = [e[0] for e in events if e[1] == cid]
        check(mine == ["sip_call_started", "sip_call_answered", "sip_call_ended"],
              f"webhooks of the API call, in order: {mine}")
        check(any(e[0] == "sip_call_ended" and e[1] == cid and e[3] == "api" for e in events),
              "sip_call_ended carries the cause (api)")
        check(any(e[0] == "sip_dtmf" and e[2] == "7" for e in events),
              f"a digit typed by the trunk phone is a sip_dtmf webhook: {[e for e in events if e[0] == 'sip_dtmf']}")

        # Metrics.
        metric = SipMetrics(base)
        lines = metric.lines
        check(metric('switchboard_sip_requests_dropped_total{reason="source"}') >= 1, "dropped requests are counted")
        check(metric("switchboard_sip_auth_failures_total") >= 2, "refused credentials are counted (INVITE and REGISTER)")
        check(metric("switchboard_sip_calls") == 0, "no call is left in progress")
        check(any(l.startswith("switchboard_sip_call_mos") for l in lines), "the calls' scores are exported")
        check(server.poll() is None, "the server is still running")
        # Challenged calls and REGISTERs went through above (trunk 'secure', user alice):
        # no password and no digest answer is in the server's log.
        slog = open(server.log, errors="replace").read()
        leaked = [s for s in ("trunkpw", "alicepw", "Proxy-Authorization", "Authorization: Digest", 'response="')
                  if s in slog]
        check(not leaked, f"the server's log holds no password or digest answer: {leaked}")
    finally:
        server.terminate()
        server.wait(timeout=20)
        hooks.shutdown()
    if failures:
        print("FAILED:\n" + "\n".join(failures))
        print("--- server log (tail) ---")
        print(open(server.log).read()[-5000:])
        for n in ("trunkcall", "alice", "bob", "secure"):
            if os.path.exists(os.path.join(T, f"{n}.log")):
                print(f"--- {n}.log (tail) ---")
                print(log_of(n)[-1500:])
        raise SystemExit(1)
    print("ok: trunks, users, REGISTER, outbound calls through the API, webhooks")


main()
