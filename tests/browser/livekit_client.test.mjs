// LiveKit's client protocol (issue 32, item 2): LiveKit's own JavaScript SDK
// (`livekit-client` from npm, unmodified, its UMD build loaded into the page) joins rooms
// with tokens from LiveKit's server SDK (`livekit-server-sdk`'s `AccessToken`), publishes
// camera and microphone with the SDK's defaults, and sees and hears the others.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AccessToken } from 'livekit-server-sdk';
import { startServer, openParticipant, TEST_SECRET, waitFor, wsJoin } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
// The package's `exports` hide the UMD build from `require.resolve`: read it by path.
const UMD = join(here, 'node_modules/livekit-client/dist/livekit-client.umd.js');

const token = async (identity, room, grant = {}) => {
  const at = new AccessToken('devkey', TEST_SECRET, { identity, name: identity, ttl: '10m' });
  at.addGrant({ roomJoin: true, room, canPublish: true, canSubscribe: true, canPublishData: true, ...grant });
  return at.toJwt();
};

// A page with livekit-client in it, connected to the room and publishing camera and
// microphone with the SDK's defaults. `window.lk` keeps what the page saw.
async function lkParticipant(base, jwt, { publish = true } = {}) {
  const p = await openParticipant(`${base}/healthz`);
  await p.page.addScriptTag({ path: UMD });
  const url = base.replace('http', 'ws');
  const started = Date.now();
  await p.page.evaluate(async ({ url, jwt, publish }) => {
    const { Room, RoomEvent } = window.LivekitClient;
    const room = new Room();
    const lk = { room, subscribed: [], speakers: [], muted: [], errors: [], data: [] };
    window.lk = lk;
    room.on(RoomEvent.TrackSubscribed, (track, pub, participant) => {
      const el = track.attach();
      el.muted = true;
      el.id = `${participant.identity}-${track.kind}`;
      document.body.appendChild(el);
      lk.subscribed.push({ identity: participant.identity, kind: track.kind, sid: pub.trackSid, source: pub.source });
    });
    room.on(RoomEvent.ActiveSpeakersChanged, (s) => lk.speakers.push(s.map((p) => p.identity)));
    room.on(RoomEvent.TrackMuted, (pub, participant) => lk.muted.push({ identity: participant.identity, kind: pub.kind, muted: true }));
    room.on(RoomEvent.TrackUnmuted, (pub, participant) => lk.muted.push({ identity: participant.identity, kind: pub.kind, muted: false }));
    await room.connect(url, jwt);
    if (publish) await room.localParticipant.enableCameraAndMicrophone();
  }, { url, jwt, publish });
  return { ...p, joinMs: Date.now() - started };
}

// What the page's subscriber connection receives, per kind.
const received = (page) => page.evaluate(async () => {
  const out = { audio: 0, video: 0, framesDecoded: 0, frameWidth: 0 };
  const pc = window.lk.room.engine.pcManager?.subscriber?.pc;
  if (!pc) return out;
  for (const s of (await pc.getStats()).values()) {
    if (s.type !== 'inbound-rtp') continue;
    out[s.kind] += s.packetsReceived || 0;
    if (s.kind === 'video') {
      out.framesDecoded += s.framesDecoded || 0;
      out.frameWidth = Math.max(out.frameWidth, s.frameWidth || 0);
    }
  }
  return out;
});

test('livekit-client participants see and hear each other', async () => {
  const server = await startServer();
  const room = `lk${Date.now()}`;
  let a; let b;
  try {
    a = await lkParticipant(server.base, await token('alice', room));
    b = await lkParticipant(server.base, await token('bob', room));
    console.log(`joined and published in ${a.joinMs} ms and ${b.joinMs} ms`);
    for (const [me, other] of [[a, 'bob'], [b, 'alice']]) {
      await waitFor(async () => {
        const s = await me.page.evaluate(() => window.lk.subscribed);
        return s.filter((t) => t.identity === other).length === 2;
      }, { timeout: 30000, what: `the two tracks of ${other} subscribed` });
      await waitFor(async () => {
        const r = await received(me.page);
        return r.framesDecoded > 30 && r.audio > 50;
      }, { timeout: 30000, what: `frames and audio of ${other} received` });
    }
    const r = await received(a.page);
    console.log('alice receives', JSON.stringify(r));
  } finally {
    await a?.close();
    await b?.close();
    await server.stop();
  }
});
