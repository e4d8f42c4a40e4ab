"""SIP phones in rooms, end to end: the switchboard binary with its SIP gateway on, and
Debian's baresip as the phones (a sine source each, what they hear recorded by the
sndfile module). Run inside a network namespace with only loopback (run.sh).

  two phones dial one room with different tones: each hears the other's tone;
  a third phone in the room hears both (the mix) and not its own;
  when they hang up, the room is empty;
  an administrator removing a phone through the REST API hangs up its call;
  dispatch rules from the configuration: a fixed room, a room per caller, a PIN (the
  right one joins, three wrong ones hang up);
  a call put on hold and resumed (re-INVITEs) stays in its room and hears it again;
  a call to an invalid room is refused (404), one to a full room is busy (486);
  sipsak's flood and random-junk modes leave the gateway answering OPTIONS;
  a phone that insists on SRTP (SDES, RTP/SAVP) and a plain one hear each other.
"""
import glob
import os
import re
import subprocess
import sys
import time
import urllib.request

from goertzel import shares
from phones import T, Ctrl, SipMetrics, driven_call, heard, participants, phone, show, start_server as start, api

SIP = 5060


def start_server():
    return start('[[sip_rules]]\nnumbers = ["100"]\nroom = "lobby"\n\n'
                 '[[sip_rules]]\nnumbers = ["200"]\nroom_prefix = "call-"\n\n'
                 '[[sip_rules]]\nnumbers = ["300"]\npins = { "1234" = "board" }\n',
                 ["--rtc-port", "24000", "--workers", "2", "--sip-listen", f"127.0.0.1:{SIP}",
                  "--sip-rtp-ports", "25000-25099", "--max-participants", "3"])


def connection_floods(server, failures):
    """2,000 idle TCP connections to the SIP port (from 100 addresses) and 500 to the
    ICE-TCP port (from 50) while two phones talk: the call goes on (each hears the other
    through the flood), the server's descriptors stay within its limits (1,024 SIP
    connections, two descriptors each; 1,024 pending ICE-TCP ones) and fall back once the
    idle ones are closed (10 s for SIP connections with no admitted request, 5 s for
    ICE-TCP without a first frame); its memory stays bounded."""
    import resource
    import socket
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    fds = lambda: len(os.listdir(f"/proc/{server.pid}/fd"))
    rss = lambda: int(re.search(r"VmRSS:\s+(\d+)", open(f"/proc/{server.pid}/status").read()).group(1))
    x, dx = phone("x", 5270, "10440-10459", 440, f"sip:flood@127.0.0.1:{SIP}", 22)
    y, dy = phone("y", 5280, "10460-10479", 1000, f"sip:flood@127.0.0.1:{SIP}", 22)
    time.sleep(3)
    fd0, rss0 = fds(), rss()
    held = []
    for i in range(2500):
        s = socket.socket()
        s.setblocking(False)
        sip = i < 2000
        s.bind((f"127.0.1.{1 + i % 100}" if sip else f"127.0.2.{1 + i % 50}", 0))
        s.connect_ex(("127.0.0.1", SIP if sip else 24000))
        held.append(s)
    flooded = time.monotonic()
    time.sleep(4)
    fd1, rss1 = fds(), rss()
    # The idle ones go 10 s after they were accepted (5 s for ICE-TCP); under load the
    # last are accepted a little later, so wait for the fall up to 20 s after the flood.
    while True:
        time.sleep(0.5)
        fd2, rss2 = fds(), rss()
        if fd2 - fd0 <= 64 or time.monotonic() - flooded > 20:
            break
    fell = time.monotonic() - flooded
    for s in held:
        s.close()
    x.wait(timeout=30)
    y.wait(timeout=30)
    hx, nx = heard(dx, (440, 1000), 4.0, 15.0)
    hy, ny = heard(dy, (440, 1000), 4.0, 15.0)
    print(f"connection floods: server fds {fd0} -> {fd1} (flood) -> {fd2} ({fell:.1f} s on); RSS {rss0} -> {rss1} -> {rss2} KiB; "
          f"x heard {hx} over {nx} blocks, y heard {hy} over {ny}")
    if fd1 - fd0 > 2 * 1024 + 1024 + 64 or fd2 - fd0 > 64:
        failures.append(f"descriptors under a connection flood: {fd0} -> {fd1} -> {fd2}")
    if rss1 - rss0 > 200_000:
        failures.append(f"memory under a connection flood: {rss0} -> {rss1} KiB")
    if not (nx > 10 and hx[1000] > 0.5 and ny > 10 and hy[440] > 0.5):
        failures.append(f"the call during the flood: x {hx} ({nx}), y {hy} ({ny})")


def srtp_calls(base, failures):
    """SDES-SRTP (RFC 4568): baresip with mediaenc=srtp-mand offers RTP/SAVP and refuses a
    plain answer; it and a plain phone in one room hear each other, and none of the keyed
    call's packets fails to authenticate."""
    uri = f"sip:secure@127.0.0.1:{SIP}"
    before = SipMetrics(base)('switchboard_sip_rtp_dropped_total{reason="srtp"}')
    s, ds = phone("srtp", 5270, "10440-10459", 440, uri, 10,
                  account="<sip:srtp@127.0.0.1:5270>;regint=0;audio_codecs=PCMU;mediaenc=srtp-mand")
    p, dp = phone("plain", 5280, "10460-10479", 1000, uri, 10)
    s.wait(timeout=30)
    p.wait(timeout=30)
    hs, ns = heard(ds, (440, 1000), 2.0, 7.0)
    hp, np_ = heard(dp, (440, 1000), 2.0, 7.0)
    slog = open(os.path.join(T, "srtp.log"), errors="replace").read()
    keyed = [l for l in slog.splitlines() if "srtp" in l.lower() or "crypto" in l.lower()]
    print("SRTP phone's log on keys:", keyed[:6])
    show("the SRTP phone (sends 440 Hz)", hs, ns)
    show("the plain phone (sends 1000 Hz)", hp, np_)
    dropped = SipMetrics(base)('switchboard_sip_rtp_dropped_total{reason="srtp"}') - before
    if not (ns > 10 and hs[1000] > 0.5 and hs[440] < 0.05):
        failures.append(f"the SRTP phone should hear the plain one: {hs}\n" + slog[-1500:])
    if not (np_ > 10 and hp[440] > 0.5 and hp[1000] < 0.05):
        failures.append(f"the plain phone should hear the SRTP one: {hp}\n" + slog[-1500:])
    if dropped:
        failures.append(f"{dropped} of the SRTP phone's packets failed to authenticate")


def main():
    server, base = start_server()
    failures = []
    try:
        room = "phones"
        uri = f"sip:{room}@127.0.0.1:{SIP}"
        a, da = phone("a", 5070, "10000-10019", 440, uri, 14)
        b, db = phone("b", 5080, "10020-10039", 1000, uri, 14)
        time.sleep(4)
        members = participants(base, room)
        print("room members while a and b talk:", [m["name"] for m in members])
        if len(members) != 2:
            failures.append(f"two phone participants expected, got {len(members)}")
        c, dc = phone("c", 5090, "10040-10059", 2000, uri, 8)
        # A fourth phone finds the room full (max_participants 3): 486 Busy Here.
        time.sleep(2)
        j, _ = phone("j", 5160, "10180-10199", 440, uri, 3)
        j.wait(timeout=20)
        jlog = open(os.path.join(T, "j.log")).read()
        print("a fourth phone in a room of three:", "486" if "486" in jlog else jlog[-300:])
        if "486" not in jlog:
            failures.append("a full room should answer 486:\n" + jlog[-1500:])
        for p in (a, b, c):
            p.wait(timeout=30)
        time.sleep(1)
        freqs = (440, 1000, 2000)
        # Seconds 1-3.5 of a's and b's calls: only the two of them (c dials at 4 s).
        ha, na = heard(da, freqs, 1.0, 3.5)
        hb, nb = heard(db, freqs, 1.0, 3.5)
        # Seconds 6-11: c is in the room too.
        ha3, na3 = heard(da, freqs, 6.0, 11.0)
        hc, nc = heard(dc, freqs, 1.0, 7.0)
        show("a (sends 440 Hz), with b", ha, na)
        show("b (sends 1000 Hz), with a", hb, nb)
        show("a, with b and c (2000 Hz)", ha3, na3)
        show("c (sends 2000 Hz), with a and b", hc, nc)
        if not (na > 10 and ha[1000] > 0.5 and ha[440] < 0.05):
            failures.append(f"a should hear b's 1000 Hz and not itself: {ha}")
        if not (nb > 10 and hb[440] > 0.5 and hb[1000] < 0.05):
            failures.append(f"b should hear a's 440 Hz and not itself: {hb}")
        if not (na3 > 10 and ha3[1000] > 0.15 and ha3[2000] > 0.15 and ha3[440] < 0.05):
            failures.append(f"a should hear the mix of b and c, not itself: {ha3}")
        if not (nc > 10 and hc[440] > 0.15 and hc[1000] > 0.15 and hc[2000] < 0.05):
            failures.append(f"c should hear the mix of a and b, not itself: {hc}")
        # Everyone hung up (baresip's -t): nobody is left in the room.
        deadline = time.time() + 10
        while participants(base, room) and time.time() < deadline:
            time.sleep(0.5)
        left = participants(base, room)
        if left:
            failures.append(f"participants left after the calls ended: {[m['name'] for m in left]}")
        # An administrator removes a phone through the REST API: the gateway hangs up (BYE).
        e, _ = phone("e", 5110, "10080-10099", 440, uri, 15)
        deadline = time.time() + 10
        while not participants(base, room) and time.time() < deadline:
            time.sleep(0.3)
        members = participants(base, room)
        if len(members) != 1:
            failures.append(f"phone e should be in the room: {members}")
        else:
            time.sleep(1)
            status, _ = api(base, room, "/" + members[0]["identity"], "DELETE")
            t0 = time.time()
            e.wait(timeout=20)
            elog = open(os.path.join(T, "e.log")).read()
            # baresip ends the call at once on BYE, then runs out its -t (15 s).
            ended = re.search(r"terminated \(duration: (\d+) secs?\)", elog)
            print(f"remove through the API: {status}; e's call:", ended.group(0) if ended else None)
            if status not in (200, 204) or not ended or int(ended.group(1)) > 8:
                failures.append(f"removing the phone should hang it up: {status}\n" + elog[-1500:])
        # Dispatch rules from the configuration: 100 is the lobby, 200 a room per caller.
        f, _ = phone("f", 5120, "10100-10119", 440, f"sip:100@127.0.0.1:{SIP}", 5)
        g, _ = phone("g", 5130, "10120-10139", 440, f"sip:200@127.0.0.1:{SIP}", 5)
        time.sleep(3)
        lobby, own = participants(base, "lobby"), participants(base, "call-g")
        print("rules: room lobby has", [m["name"] for m in lobby], "; room call-g has", [m["name"] for m in own])
        if [m["name"] for m in lobby] != ["☎ f"] or [m["name"] for m in own] != ["☎ g"]:
            failures.append(f"dispatch rules: lobby {lobby}, call-g {own}")
        f.wait(timeout=20)
        g.wait(timeout=20)
        # PIN entry: the right PIN joins its room; three wrong ones hang up.
        h, _, ch, answered = driven_call("h", 5140, "10140-10159", 440, f"sip:300@127.0.0.1:{SIP}", 15, 4450)
        if not answered:
            failures.append("the PIN call was not answered")
        time.sleep(1)
        ch.keys("1234#")
        time.sleep(2)
        board = [m["name"] for m in participants(base, "board")]
        print("PIN 1234#: room board has", board)
        if board != ["☎ h"]:
            failures.append(f"the right PIN should join room board: {board}")
        h.terminate()
        i, _, ci, answered = driven_call("i", 5150, "10160-10179", 440, f"sip:300@127.0.0.1:{SIP}", 20, 4460)
        if not answered:
            failures.append("the second PIN call was not answered")
        time.sleep(1)
        t0 = time.time()
        ci.keys("9#9#9#")
        closed = ci.wait("CALL_CLOSED", 5)
        print(f"three wrong PINs: call closed by the gateway: {closed} ({time.time() - t0:.1f} s)")
        if not closed:
            failures.append("three wrong PINs should hang up")
        i.terminate()
        # Hold and resume (re-INVITEs from the phone): the call stays in the room, and after
        # resuming the phone hears the room again.
        l, _ = phone("l", 5180, "10220-10239", 1000, f"sip:hold@127.0.0.1:{SIP}", 16)
        k, dk, ck, answered = driven_call("k", 5170, "10200-10219", 440, f"sip:hold@127.0.0.1:{SIP}", 15, 4470)
        if not answered:
            failures.append("the hold call was not answered")
        time.sleep(2)
        ck.send("hold")
        time.sleep(3)
        held = [m["name"] for m in participants(base, "hold")]
        ck.send("resume")
        t_resume = time.time()
        time.sleep(4)
        k.terminate()
        l.terminate()
        k.wait(timeout=10)
        rec = max(glob.glob(os.path.join(dk, "*-dec.wav")), key=os.path.getsize)
        # The recording runs from the call's start; the last 3 s are after the resume.
        import wave
        w = wave.open(rec)
        length = w.getnframes() / w.getframerate()
        after, n_after = shares(rec, (440, 1000), max(0.0, length - 3.0), length)
        print("on hold the room had", held, "; after resuming k heard over", n_after, "blocks:", {h: round(v, 3) for h, v in after.items()})
        if sorted(held) != ["☎ k", "☎ l"]:
            failures.append(f"a held phone stays in the room: {held}")
        if not (n_after > 10 and after[1000] > 0.5):
            failures.append(f"after resume the phone should hear l's 1000 Hz again: {after}")
        # SIP over TCP: a phone whose account and call use transport=tcp gets in and hears
        # the other phone in the room (one over UDP).
        u, _ = phone("u", 5190, "10240-10259", 1000, f"sip:tcproom@127.0.0.1:{SIP}", 10)
        tp, dtp = phone("tcp", 5200, "10260-10279", 440, f"sip:tcproom@127.0.0.1:{SIP};transport=tcp", 8,
                        account="<sip:tcp@127.0.0.1:5200;transport=tcp>;regint=0;audio_codecs=PCMU")
        time.sleep(4)
        tcp_room = sorted(m["name"] for m in participants(base, "tcproom"))
        tp.wait(timeout=20)
        u.wait(timeout=20)
        htcp, ntcp = heard(dtp, (440, 1000), 2.0, 6.0)
        tlog = open(os.path.join(T, "tcp.log"), errors="replace").read()
        print("over TCP: room tcproom had", tcp_room, "; the TCP phone heard", {h: round(v, 3) for h, v in htcp.items()})
        if tcp_room != ["☎ tcp", "☎ u"] or not (ntcp > 10 and htcp[1000] > 0.5) or "TCP" not in tlog.upper():
            failures.append(f"a call over TCP: room {tcp_room}, heard {htcp}:\n" + tlog[-1500:])
        # A call to something that is not a room name is refused (404), and no one joins.
        bad, _ = phone("d", 5100, "10060-10079", 440, f"sip:no%20room@127.0.0.1:{SIP}", 4)
        bad.wait(timeout=20)
        log = open(os.path.join(T, "d.log")).read()
        if "404" not in log:
            failures.append("a call to an invalid room should get 404:\n" + log[-2000:])
        # Abuse (sipsak): a flood of 5,000 OPTIONS and random-junk requests, each bounded;
        # the gateway must still answer OPTIONS with 200 afterwards, and still take calls.
        sip_uri = f"sip:x@127.0.0.1:{SIP}"
        for args in (["-F", "-e", "5000"], ["-R", "-t", "60"]):
            subprocess.run(["timeout", "20", "sipsak", *args, "-s", sip_uri],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        options = subprocess.run(["timeout", "10", "sipsak", "-vv", "-s", sip_uri],
                                 capture_output=True, text=True)
        print("OPTIONS after the flood and the junk:", "200" if "200 OK" in options.stdout else options.stdout[-300:])
        if "200 OK" not in options.stdout:
            failures.append("OPTIONS unanswered after sipsak's flood and random modes:\n" + options.stdout[-1000:])
        if server.poll() is not None:
            failures.append("the server died under sipsak")
        # The gateway's metrics.
        metric = SipMetrics(base)
        sip_lines = metric.lines
        # a, b, c, e, f, g, h, k, l, u and tcp joined rooms; i typed wrong PINs; d dialled no room;
        # j found the room full.
        if metric('switchboard_sip_calls_total{result="answered"}') != 11 \
                or metric('switchboard_sip_calls_total{result="pin_failed"}') != 1 \
                or metric('switchboard_sip_calls_total{result="404"}') != 1 \
                or metric('switchboard_sip_calls_total{result="486"}') != 1 \
                or metric("switchboard_sip_dtmf_digits_total") < 11 \
                or metric("switchboard_sip_calls") != 0:
            failures.append("SIP metrics: " + "\n".join(sip_lines))
        # PIN guesses across calls: one address (127.0.0.7) typing three wrong PINs a call
        # is locked out at its tenth wrong PIN, in its fourth call; its fifth call is refused
        # (403) without being answered; another address still gets in with the right PIN.
        gp, _ = phone("guesser", 5250, "10400-10419", 440, None, 90, ctrl=4490, ip="127.0.0.7")
        cg = Ctrl(4490)
        outcomes = []
        for _ in range(5):
            cg.send("dial", f"sip:300@127.0.0.1:{SIP}")
            first = cg.wait_any(("CALL_ESTABLISHED", "CALL_CLOSED"), 10)
            if first == "CALL_ESTABLISHED":
                time.sleep(0.5)
                cg.keys("9#9#9#")
                cg.wait_any(("CALL_CLOSED",), 10)
            outcomes.append(first)
            time.sleep(0.5)
        gp.terminate()
        glog = open(os.path.join(T, "guesser.log"), errors="replace").read()
        print("PIN guesser's calls:", outcomes)
        if outcomes != ["CALL_ESTABLISHED"] * 4 + ["CALL_CLOSED"] or "403" not in glog:
            failures.append(f"PIN lockout across calls: {outcomes}\n" + glog[-1500:])
        ok_p, _, cok, answered = driven_call("pinok", 5260, "10420-10439", 440, f"sip:300@127.0.0.1:{SIP}", 12, 4500)
        time.sleep(1)
        cok.keys("1234#")
        time.sleep(2)
        board = [m["name"] for m in participants(base, "board")]
        ok_p.terminate()
        if not answered or "☎ pinok" not in board:
            failures.append(f"another address still gets in with the right PIN: {answered} {board}")
        if SipMetrics(base)("switchboard_sip_pin_lockouts_total") != 1:
            failures.append("the lockout is counted")
        srtp_calls(base, failures)
        connection_floods(server, failures)
    finally:
        server.terminate()
        server.wait(timeout=20)
    if failures:
        print("\n".join(["FAILED:"] + failures))
        print("--- server log (tail) ---")
        print(open(server.log).read()[-4000:])
        for n in "abce":
            print(f"--- {n}.log (tail) ---")
            print(open(os.path.join(T, f"{n}.log")).read()[-1500:])
        sys.exit(1)
    print("ok: phones hear each other and the mix; hang-ups leave the room; an API removal hangs up; bad rooms are 404")


main()
