"""A second, independent WebRTC stack (aiortc) doing the plain WHIP and WHEP exchange.

Publishes synthetic video (H.264 or VP8) and Opus audio through `POST /whip/{room}`,
plays it back through `POST /whep/{room}/{identity}` with a second peer connection,
counts decoded frames, then ends both sessions with DELETE. Exits non-zero on failure.
Only talks to the address given in --base (a test namespace or loopback).
"""

import argparse
import asyncio
import json
import sys
import time
import urllib.error
import urllib.request

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription, VideoStreamTrack
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError


def http(method, url, body=None, headers=None):
    """A blocking HTTP request: (status, headers, body text)."""
    req = urllib.request.Request(url, data=body.encode() if body else None, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


async def request(*args, **kw):
    return await asyncio.to_thread(http, *args, **kw)


async def dev_token(base, room, name):
    status, _, body = await request("GET", f"{base}/api/dev/token?room={room}&name={name}")
    assert status == 200, (status, body)
    t = json.loads(body)
    return t["token"], t["identity"]


def prefer(transceiver, kind, codec):
    codecs = [c for c in RTCRtpSender.getCapabilities(kind).codecs if c.mimeType.lower() == f"{kind}/{codec}".lower()]
    assert codecs, f"aiortc has no {codec}"
    transceiver.setCodecPreferences(codecs)


async def exchange(base, path, pc, token):
    """POST the offer, apply the answer; returns the session URL."""
    await pc.setLocalDescription(await pc.createOffer())
    status, headers, body = await request(
        "POST", f"{base}{path}", pc.localDescription.sdp,
        {"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
    )
    assert status == 201, f"POST {path}: {status} {body}"
    headers = {k.lower(): v for k, v in headers.items()}
    assert headers["content-type"].startswith("application/sdp"), headers
    assert "etag" in headers, headers
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    return f"{base}{headers['location']}"


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--codec", default="H264", choices=["H264", "VP8"])
    ap.add_argument("--timeout", type=float, default=40)
    a = ap.parse_args()
    room = f"aiortc-{a.codec.lower()}-{int(time.time())}"

    # WHIP: publish, as OBS does (one audio and one video m-line, no trickle).
    token, identity = await dev_token(a.base, room, "aiortc")
    # No ICE servers: aiortc would otherwise ask a public STUN server.
    pub = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pub.addTransceiver(AudioStreamTrack(), direction="sendonly")
    prefer(pub.addTransceiver(VideoStreamTrack(), direction="sendonly"), "video", a.codec)
    whip = await exchange(a.base, f"/whip/{room}", pub, token)

    # WHEP: play that participant.
    view_token, _ = await dev_token(a.base, room, "viewer")
    sub = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    sub.addTransceiver("audio", direction="recvonly")
    prefer(sub.addTransceiver("video", direction="recvonly"), "video", a.codec)
    got = {"video": 0, "audio": 0, "width": 0, "height": 0}

    async def consume(track):
        try:
            while True:
                frame = await track.recv()
                got[track.kind] += 1
                if track.kind == "video":
                    got["width"], got["height"] = frame.width, frame.height
        except MediaStreamError:
            pass

    sub.on("track", lambda track: asyncio.ensure_future(consume(track)))
    whep = await exchange(a.base, f"/whep/{room}/{identity}", sub, view_token)

    end = time.time() + a.timeout
    while time.time() < end and (got["video"] < 60 or got["audio"] < 100):
        await asyncio.sleep(0.25)
    print(f"{a.codec}: {got['video']} video frames decoded at {got['width']}x{got['height']}, {got['audio']} audio frames")
    ok = got["video"] >= 60 and got["audio"] >= 100

    # DELETE both sessions; a second DELETE finds nothing.
    for url in (whep, whip):
        status, _, body = await request("DELETE", url)
        assert status == 200, (url, status, body)
        status, _, _ = await request("DELETE", url)
        assert status == 404, (url, status)
    await sub.close()
    await pub.close()
    if not ok:
        print("FAILED: not enough media arrived through WHIP and WHEP", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    asyncio.run(main())
