"""The SIP gateway's CPU per call: N baresip phones (each its own tone) in one room for a
while; the server's CPU time (utime + stime, /proc) in a window when all are connected,
divided by calls and by 20 ms frames. The phones run on the same machine: their own CPU
is reported beside it. Usage (root, in a namespace of its own):
  unshare -n bash -c 'ip link set lo up && python3 tests/sip/bench.py target/release/switchboard 20 20'
"""
import os
import re
import subprocess
import sys
import tempfile
import time

BIN, N, SECONDS = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
T = tempfile.mkdtemp(prefix="sb-sipbench-")
SIP = 5060
TICK = os.sysconf("SC_CLK_TCK")


def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def main():
    srv = subprocess.Popen([BIN, "--http", "127.0.0.1:0", "--rtc-port", "24000", "--workers", "2",
                            "--sip-listen", f"127.0.0.1:{SIP}", "--sip-rtp-ports", "25000-25199",
                            "--log", "warn,sip::call=info"],
                           stdout=subprocess.PIPE, stderr=open(os.path.join(T, "server.log"), "w"), text=True)
    while not re.search(r"open http://", srv.stdout.readline()):
        pass
    phones = []
    for i in range(N):
        d = os.path.join(T, f"p{i}")
        os.makedirs(d)
        port = 6000 + 10 * i
        rtp = f"{12000 + 20 * i}-{12019 + 20 * i}"
        with open(os.path.join(d, "config"), "w") as f:
            f.write(f"poll_method epoll\nsip_listen 127.0.0.1:{port}\nnet_interface 127.0.0.1\n"
                    f"audio_player alsa,null\naudio_alert alsa,null\naudio_source ausine,{300 + 50 * i}\n"
                    "ausrc_srate 48000\nausrc_channels 2\nauplay_srate 48000\naudio_level no\n"
                    f"rtp_ports {rtp}\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\n"
                    "module ausine.so\nmodule alsa.so\nmodule_app account.so\nmodule_app menu.so\n")
        with open(os.path.join(d, "accounts"), "w") as f:
            f.write(f"<sip:p{i}@127.0.0.1:{port}>;regint=0;audio_codecs=PCMU\n")
        phones.append(subprocess.Popen(["baresip", "-f", d, "-t", str(int(SECONDS + 10 + N * 0.3)),
                                        "-e", f"/dial sip:bench@127.0.0.1:{SIP}"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.3)
    time.sleep(4)  # every call set up, buffers settled
    s0, p0, t0 = cpu(srv.pid), sum(cpu(p.pid) for p in phones), time.time()
    time.sleep(SECONDS)
    s1, p1, t1 = cpu(srv.pid), sum(cpu(p.pid) for p in phones), time.time()
    for p in phones:
        p.terminate()
    srv.terminate()
    srv.wait()
    log = open(os.path.join(T, "server.log")).read()
    answered = log.count("call answered")
    ended_early = len(re.findall(r"call ended: (?!hung up)", log))
    wall = t1 - t0
    server = s1 - s0
    frames = N * wall / 0.02
    print(f"calls answered {answered} of {N}; ended by the server: {ended_early}")
    print(f"{N} phones in one room, {wall:.1f} s measured: server CPU {server:.2f} s = "
          f"{100 * server / wall:.1f} % of one core, {100 * server / wall / N:.2f} % per call, "
          f"{1e6 * server / frames:.1f} µs per call and 20 ms frame (both directions); "
          f"the {N} baresip phones: {100 * (p1 - p0) / wall:.1f} % of one core")


main()
