"""LiveKit's Python server SDK (`livekit-api` from PyPI) against Switchboard: its
RoomService client speaks Twirp with protobuf bodies, and its AccessToken mints the
participant's token. A participant joins over our WebSocket with that token; the SDK
creates, lists and updates rooms, lists, fetches, updates, messages and removes the
participant, and reads Twirp errors. Loopback only; the server is the binary given.

Usage: python room_service.py BIN"""
import asyncio
import json
import os
import socket
import subprocess
import sys
import time

import aiohttp
from livekit import api

KEY, SECRET = "lkpy", "livekit-python-tests-only-secret-0123"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(bin_path):
    port = free_port()
    env = dict(os.environ, SWITCHBOARD_KEYS=f"{KEY}:{SECRET}", RUST_LOG="warn")
    proc = subprocess.Popen([bin_path, "--http", f"127.0.0.1:{port}", "--rtc-port", str(free_port()),
                             "--workers", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the server did not start")


async def expect_error(coro, code):
    try:
        await coro
    except api.TwirpError as e:
        assert e.code == code, f"expected {code}, got {e.code}: {e.message}"
        return e
    raise AssertionError(f"expected the Twirp error {code}")


async def main(base):
    room = f"py{int(time.time())}"
    lk = api.LiveKitAPI(base, KEY, SECRET, failover=False)
    try:
        created = await lk.room.create_room(api.CreateRoomRequest(name=room, max_participants=4, metadata="m1"))
        assert created.name == room and created.max_participants == 4 and created.sid.startswith("RM_"), created
        rooms = await lk.room.list_rooms(api.ListRoomsRequest(names=[room]))
        assert [r.name for r in rooms.rooms] == [room], rooms
        assert (await lk.room.update_room_metadata(api.UpdateRoomMetadataRequest(room=room, metadata="m2"))).metadata == "m2"

        token = (api.AccessToken(KEY, SECRET).with_identity("pybot").with_name("Py Bot")
                 .with_kind("agent").with_attributes({"lang": "python"})
                 .with_grants(api.VideoGrants(room_join=True, room=room)).to_jwt())
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(base.replace("http", "ws") + "/ws") as ws:
                await ws.send_str(json.dumps({"type": "join", "token": token}))
                joined = json.loads((await ws.receive(timeout=10)).data)
                assert joined["type"] == "joined", joined
                me = joined["participant"]
                assert (me["identity"], me["name"], me["kind"], me["attributes"]) == ("pybot", "Py Bot", "agent", {"lang": "python"}), me

                people = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
                assert [p.identity for p in people.participants] == ["pybot"], people
                p = await lk.room.get_participant(api.RoomParticipantIdentity(room=room, identity="pybot"))
                assert p.sid.startswith("PA_") and p.kind == api.ParticipantInfo.Kind.AGENT and p.attributes["lang"] == "python", p
                p = await lk.room.update_participant(api.UpdateParticipantRequest(room=room, identity="pybot", metadata="busy"))
                assert p.metadata == "busy", p
                await lk.room.send_data(api.SendDataRequest(room=room, data=b"ping", topic="py",
                                                            kind=api.DataPacket.Kind.RELIABLE, destination_identities=["pybot"]))
                seen = []
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and not any(m.get("type") == "data" for m in seen):
                    msg = await ws.receive(timeout=5)
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        seen.append(json.loads(msg.data))
                data = [m for m in seen if m.get("type") == "data"]
                assert data and data[0]["payload"] == "ping" and data[0]["topic"] == "py", seen

                await expect_error(lk.room.get_participant(api.RoomParticipantIdentity(room=room, identity="nobody")), "not_found")
                # Binary payloads are taken (LiveKit clients get them; our protocol's clients
                # only UTF-8 text); one over the 15 KiB limit is refused.
                await lk.room.send_data(api.SendDataRequest(room=room, data=b"\xff\xfe", kind=api.DataPacket.Kind.RELIABLE))
                await expect_error(lk.room.send_data(api.SendDataRequest(room=room, data=b"x" * (16 * 1024), kind=api.DataPacket.Kind.RELIABLE)),
                                   "invalid_argument")
                await lk.room.remove_participant(api.RoomParticipantIdentity(room=room, identity="pybot"))
                closed = False
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and not closed:
                    msg = await ws.receive(timeout=5)
                    closed = msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
                assert closed, "the removed participant's socket is closed"
        await lk.room.delete_room(api.DeleteRoomRequest(room=room))
        assert room not in [r.name for r in (await lk.room.list_rooms(api.ListRoomsRequest())).rooms]
        forged = api.LiveKitAPI(base, KEY, "not-the-secret-of-this-key-at-all!!", failover=False)
        try:
            await expect_error(forged.room.list_rooms(api.ListRoomsRequest()), "unauthenticated")
        finally:
            await forged.aclose()
        print("livekit-api (PyPI): rooms, participant (agent, attributes), data, removal and errors over protobuf Twirp: ok")
    finally:
        await lk.aclose()


if __name__ == "__main__":
    proc, base = start(sys.argv[1])
    try:
        asyncio.run(main(base))
    except BaseException:
        print(proc.stderr.read1(65536).decode(errors="replace") if proc.poll() is not None else "(server still running)")
        raise
    finally:
        proc.terminate()
        proc.wait(timeout=10)
