// LiveKit's client protocol (issue 32, item 2): LiveKit's own JavaScript SDK
// (`livekit-client` from npm, unmodified, its UMD build loaded into the page) joins rooms
// with tokens from LiveKit's server SDK (`livekit-server-sdk`'s `AccessToken`), publishes
// camera and microphone with the SDK's defaults, and sees and hears the others.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join, dirname } from 'node:path';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AccessToken, RoomServiceClient } from 'livekit-server-sdk';
import { execFileSync } from 'node:child_process';
import { startServer, openParticipant, TEST_SECRET, waitFor, waitForTileVideo, canShapeLinks, shapedNet, redisServer, have, toneFile, relayedSessions, LIVEKIT_UMD } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const WORKER = join(here, 'node_modules/livekit-client/dist/livekit-client.e2ee.worker.js');

const token = async (identity, room, grant = {}) => {
  const at = new AccessToken('devkey', TEST_SECRET, { identity, name: identity, ttl: '10m' });
  at.addGrant({ roomJoin: true, room, canPublish: true, canSubscribe: true, canPublishData: true, ...grant });
  return at.toJwt();
};

// A page with livekit-client in it, connected to the room and publishing camera and
// microphone with the SDK's defaults. `window.lk` keeps what the page saw.
// `options` are the Room's (livekit-client's own defaults otherwise); `width` is the CSS
// width of the video elements it shows.
// `e2ee`: a shared key: the SDK's end-to-end encryption with it (its worker from the
// package, loaded from a blob URL).
async function lkParticipant(base, jwt, { publish = true, options = {}, width = 640, args = [], open = {}, connect = {}, e2ee = null } = {}) {
  const p = await openParticipant(`${base}/healthz`, { args, ...open });
  await p.page.addScriptTag({ path: LIVEKIT_UMD });
  if (e2ee) {
    await p.page.evaluate(async ({ key, code }) => {
      const keyProvider = new window.LivekitClient.ExternalE2EEKeyProvider();
      await keyProvider.setKey(key);
      const worker = new Worker(URL.createObjectURL(new Blob([code], { type: 'text/javascript' })));
      window.e2eeOptions = { keyProvider, worker };
    }, { key: e2ee, code: readFileSync(WORKER, 'utf8') });
  }
  const url = base.replace('http', 'ws');
  const started = Date.now();
  await p.page.evaluate(async ({ url, jwt, publish, options, width, connect }) => {
    const { Room, RoomEvent } = window.LivekitClient;
    const room = new Room(window.e2eeOptions ? { ...options, e2ee: window.e2eeOptions } : options);
    if (window.e2eeOptions) await room.setE2EEEnabled(true);
    const lk = { room, subscribed: [], speakers: [], muted: [], errors: [], data: [] };
    window.lk = lk;
    room.on(RoomEvent.TrackSubscribed, (track, pub, participant) => {
      const el = track.attach();
      el.muted = true;
      el.id = `${participant.identity}-${track.kind}`;
      if (track.kind === 'video') el.style.width = `${width}px`;
      document.body.appendChild(el);
      lk.subscribed.push({ identity: participant.identity, kind: track.kind, sid: pub.trackSid, source: pub.source });
    });
    room.on(RoomEvent.Reconnecting, () => lk.errors.push(['reconnecting', Date.now()]));
    room.on(RoomEvent.Reconnected, () => lk.errors.push(['reconnected', Date.now()]));
    room.on(RoomEvent.Disconnected, (why) => lk.errors.push(['disconnected', why, Date.now()]));
    room.on(RoomEvent.ActiveSpeakersChanged, (s) => lk.speakers.push(s.map((p) => p.identity)));
    room.on(RoomEvent.DataReceived, (payload, participant, kind, topic) => lk.data.push({ from: participant?.identity, kind, topic, text: new TextDecoder().decode(payload) }));
    room.on(RoomEvent.TrackMuted, (pub, participant) => lk.muted.push({ identity: participant.identity, kind: pub.kind, muted: true }));
    room.on(RoomEvent.TrackUnmuted, (pub, participant) => lk.muted.push({ identity: participant.identity, kind: pub.kind, muted: false }));
    await room.connect(url, jwt, connect);
    if (publish) await room.localParticipant.enableCameraAndMicrophone();
  }, { url, jwt, publish, options, width, connect });
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
  let a; let b; let carol;
  try {
    const tone = { args: [`--use-file-for-fake-audio-capture=${toneFile(440)}`], options: { audioCaptureDefaults: { noiseSuppression: false, echoCancellation: false, autoGainControl: false } } };
    a = await lkParticipant(server.base, await token('alice', room, { canUpdateOwnMetadata: true }), tone);
    b = await lkParticipant(server.base, await token('bob', room), tone);
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
    // The server's view of each one's connection, as the SDK reports it.
    await waitFor(() => b.page.evaluate(() => ['excellent', 'good'].includes(window.lk.room.localParticipant.connectionQuality)), { what: "bob's connection quality", timeout: 15000 });

    // Alice mutes her microphone, then unmutes: Bob's SDK sees both.
    await a.page.evaluate(() => window.lk.room.localParticipant.setMicrophoneEnabled(false));
    await waitFor(() => b.page.evaluate(() => window.lk.muted.some((m) => m.identity === 'alice' && m.kind === 'audio' && m.muted)), { what: 'mute seen', timeout: 10000 });
    await a.page.evaluate(() => window.lk.room.localParticipant.setMicrophoneEnabled(true));
    await waitFor(() => b.page.evaluate(() => window.lk.muted.some((m) => m.identity === 'alice' && m.kind === 'audio' && !m.muted)), { what: 'unmute seen', timeout: 10000 });
    // Who speaks: a steady tone from each microphone (a file, audio processing off so
    // that noise suppression keeps it), one at a time. Bob goes quiet: Alice is the active
    // speaker at Bob's; then the other way round, as each SDK has it (`activeSpeakers`:
    // a speaker named before the room is connected is not an event, only the state).
    await b.page.evaluate(() => window.lk.room.localParticipant.setMicrophoneEnabled(false));
    const speaker = (p) => p.page.evaluate(() => window.lk.room.activeSpeakers[0]?.identity);
    await waitFor(async () => (await speaker(b)) === 'alice', { what: 'alice speaking, at bob', timeout: 15000 });
    await a.page.evaluate(() => window.lk.room.localParticipant.setMicrophoneEnabled(false));
    await b.page.evaluate(() => window.lk.room.localParticipant.setMicrophoneEnabled(true));
    await waitFor(async () => (await speaker(a)) === 'bob', { what: 'bob speaking, at alice', timeout: 15000 });
    await waitFor(async () => (await speaker(b)) === 'bob', { what: 'bob speaking, at bob', timeout: 15000 });
    console.log('speakers seen by alice', JSON.stringify(await a.page.evaluate(() => window.lk.speakers.slice(-3))));
    await a.page.evaluate(() => window.lk.room.localParticipant.setMicrophoneEnabled(true));

    // Alice may change her own metadata and name (her token grants it): Bob sees both;
    // Bob may not, and his SDK is told so.
    await b.page.evaluate(() => {
      window.lk.changed = [];
      window.lk.room.on(window.LivekitClient.RoomEvent.ParticipantMetadataChanged, (m, p) => window.lk.changed.push(['metadata', p.identity, p.metadata]));
      window.lk.room.on(window.LivekitClient.RoomEvent.ParticipantNameChanged, (n, p) => window.lk.changed.push(['name', p.identity, n]));
    });
    await a.page.evaluate(async () => {
      await window.lk.room.localParticipant.setMetadata('{"hand":"up"}');
      await window.lk.room.localParticipant.setName('Alice L.');
    });
    await waitFor(() => b.page.evaluate(() => window.lk.changed.some((c) => c[0] === 'name' && c[2] === 'Alice L.')
      && window.lk.changed.some((c) => c[0] === 'metadata' && c[2] === '{"hand":"up"}')), { what: "alice's metadata and name at bob", timeout: 10000 });
    const refused = await b.page.evaluate(() => window.lk.room.localParticipant.setMetadata('mine').then(() => 'accepted', (e) => String(e.message || e)));
    console.log('bob setting his own metadata without the grant:', refused);
    assert.notEqual(refused, 'accepted');
    assert.match(refused, /canUpdateOwnMetadata/);

    // Data over the data channels: reliable and lossy with topics, to the room and to one
    // identity; the sender is who the server says, whatever the packet claimed.
    await a.page.evaluate(async () => {
      const enc = new TextEncoder();
      const lp = window.lk.room.localParticipant;
      await lp.publishData(enc.encode('hello reliable'), { reliable: true, topic: 'greetings' });
      await lp.publishData(enc.encode('hello lossy'), { reliable: false, topic: 'fast' });
      await lp.publishData(enc.encode('just for bob'), { reliable: true, destinationIdentities: ['bob'] });
    });
    await waitFor(() => b.page.evaluate(() => window.lk.data.length >= 3), { what: 'three data packets at bob', timeout: 10000 });
    const got = await b.page.evaluate(() => window.lk.data);
    console.log('data at bob', JSON.stringify(got));
    assert.deepEqual(got.find((d) => d.text === 'hello reliable'), { from: 'alice', kind: 0, topic: 'greetings', text: 'hello reliable' });
    assert.equal(got.find((d) => d.text === 'hello lossy')?.topic, 'fast');
    assert.ok(got.some((d) => d.text === 'just for bob' && d.from === 'alice'));

    // A screen share (Chromium's fake capture; it has no audio to share here): Bob's SDK
    // gets it as a third track of Alice's, with its source, and decodes it.
    await a.page.evaluate(() => window.lk.room.localParticipant.setScreenShareEnabled(true, { audio: true }));
    await waitFor(() => b.page.evaluate(() => window.lk.subscribed.some((t) => t.identity === 'alice' && t.source === 'screen_share')), { what: 'the screen share at bob', timeout: 15000 });
    await waitFor(() => b.page.evaluate(() => {
      const pub = [...window.lk.room.remoteParticipants.get('alice').videoTrackPublications.values()].find((p) => p.source === 'screen_share');
      const el = pub?.track?.attachedElements[0];
      return el ? el.getVideoPlaybackQuality().totalVideoFrames > 5 : false;
    }), { what: 'the screen share decoded at bob', timeout: 15000 });
    await a.page.evaluate(() => window.lk.room.localParticipant.setScreenShareEnabled(false));

    // Our own web app in the same room: it sees the LiveKit participants, and they see it.
    carol = await openParticipant(`${server.base}/?room=${room}&name=carol&autojoin=1&quality=low`);
    await waitForTileVideo(carol.page, 'Alice L.'); // her new name
    await waitFor(async () => (await a.page.evaluate(() => window.lk.subscribed)).filter((t) => t.identity.startsWith('carol')).length === 2,
      { what: "carol's tracks at alice", timeout: 30000 });
    await waitFor(async () => {
      const frames = await a.page.evaluate(async () => {
        const v = [...document.querySelectorAll('video')].find((e) => e.id.startsWith('carol'));
        return v ? v.getVideoPlaybackQuality().totalVideoFrames : 0;
      });
      return frames > 30;
    }, { what: "carol's video plays at alice", timeout: 30000 });
    // Data across the two protocols: Carol's data message reaches Alice's SDK as a user
    // packet with its topic, and Alice's reaches Carol's client; Alice's packet for Bob
    // alone does not.
    await carol.page.evaluate(() => {
      window.carolData = [];
      window.sb.client.on('data', (m) => window.carolData.push(m));
      window.sb.client.sendData('from carol', 'chat-x');
    });
    await waitFor(() => a.page.evaluate(() => window.lk.data.some((d) => d.text === 'from carol' && d.topic === 'chat-x' && d.from.startsWith('carol'))), { what: "carol's data at alice", timeout: 10000 });
    await a.page.evaluate(async () => {
      const lp = window.lk.room.localParticipant;
      await lp.publishData(new TextEncoder().encode('private'), { reliable: true, destinationIdentities: ['bob'] });
      await lp.publishData(new TextEncoder().encode('to everyone'), { reliable: true, topic: 'all' });
    });
    await waitFor(() => carol.page.evaluate(() => window.carolData.some((m) => m.payload === 'to everyone' && m.topic === 'all')), { what: "alice's data at carol", timeout: 10000 });
    assert.ok(!(await carol.page.evaluate(() => window.carolData.some((m) => m.payload === 'private'))), 'a packet for bob alone is not at carol');
  } finally {
    await a?.close();
    await b?.close();
    await carol?.close();
    await server.stop();
  }
});

test("adaptive stream: the layer follows the size of the subscriber's video element", async () => {
  const server = await startServer();
  const room = `lk${Date.now()}`;
  let a; let b;
  try {
    a = await lkParticipant(server.base, await token('alice', room));
    b = await lkParticipant(server.base, await token('bob', room), { publish: false, width: 160, options: { adaptiveStream: true } });
    const width = () => b.page.evaluate(async () => {
      const pc = window.lk.room.engine.pcManager.subscriber.pc;
      const s = [...(await pc.getStats()).values()].find((x) => x.type === 'inbound-rtp' && x.kind === 'video');
      return s?.frameWidth || 0;
    });
    // A 160 px element: the lowest layer (320 wide) is enough.
    await waitFor(async () => { const w = await width(); return w > 0 && w <= 320; }, { what: 'the low layer for a small element', timeout: 30000 });
    const small = await width();
    // The element grows to 1280 px: a higher layer follows.
    await b.page.evaluate(() => { for (const v of document.querySelectorAll('video')) v.style.width = '1280px'; });
    await waitFor(async () => (await width()) > 320, { what: 'a higher layer for a large element', timeout: 40000 });
    console.log(`frame width at bob: ${small} with a 160 px element, ${await width()} with 1280 px`);
  } finally {
    await a?.close();
    await b?.close();
    await server.stop();
  }
});

// A 20 s cut of one participant's link (its own network namespace drops every packet to
// and from the server's): the SDK's own reconnect resumes its session (`reconnect=1`,
// then ICE restarts), and both sides decode each other again; the same participant
// throughout, never seen leaving.
const shaping = canShapeLinks();
test("a 20 s network cut is ridden out by the SDK's own reconnect", { skip: !shaping && 'needs root and iproute2/nftables to create namespaces' }, async () => {
  const net = shapedNet(String((process.pid + 11) % 10000));
  const nft = (...a) => execFileSync('ip', ['netns', 'exec', net.view, 'nft', ...a], { stdio: ['ignore', 'ignore', 'pipe'] });
  const restore = () => { try { nft('delete', 'table', 'inet', 'sblkcut'); } catch {} };
  let server; let a; let b;
  try {
    server = await startServer([], {}, { netns: net.srv, addr: net.addr });
    const room = `lkcut${Date.now()}`;
    const open = { secureOrigin: server.base };
    a = await lkParticipant(server.base, await token('alice', room), { open });
    b = await lkParticipant(server.base, await token('bob', room), { open: { ...open, netns: net.view } });
    const frames = async (p, from) => p.page.evaluate(async (from) => {
      const v = [...document.querySelectorAll('video')].filter((e) => e.id === `${from}-video`).pop();
      return v ? v.getVideoPlaybackQuality().totalVideoFrames : 0;
    }, from);
    await waitFor(async () => (await frames(a, 'bob')) > 30 && (await frames(b, 'alice')) > 30, { what: 'video both ways', timeout: 30000 });
    const sid = await b.page.evaluate(() => window.lk.room.localParticipant.sid);
    await a.page.evaluate(() => {
      window.lk.left = [];
      window.lk.room.on(window.LivekitClient.RoomEvent.ParticipantDisconnected, (p) => window.lk.left.push(p.identity));
    });
    nft('add', 'table', 'inet', 'sblkcut');
    nft('add', 'chain', 'inet', 'sblkcut', 'in', '{ type filter hook input priority 0 ; }');
    nft('add', 'chain', 'inet', 'sblkcut', 'out', '{ type filter hook output priority 0 ; }');
    nft('add', 'rule', 'inet', 'sblkcut', 'in', 'ip', 'saddr', '10.201.1.0/24', 'drop');
    nft('add', 'rule', 'inet', 'sblkcut', 'out', 'ip', 'daddr', '10.201.1.0/24', 'drop');
    await new Promise((r) => setTimeout(r, 20000));
    restore();
    const restored = Date.now();
    // Bob's SDK reconnects by itself; then each side plays the other's video again
    // (new elements for the new session's tracks: their frame counts start at 0).
    await waitFor(async () => (await b.page.evaluate(() => window.lk.room.state)) === 'connected'
      && (await frames(a, 'bob')) > 30 && (await frames(b, 'alice')) > 30, { what: 'video both ways after the cut', timeout: 60000, interval: 500 });
    const back = Date.now() - restored;
    const events = await b.page.evaluate(() => window.lk.errors);
    const after = await b.page.evaluate(() => window.lk.room.localParticipant.sid);
    const left = await a.page.evaluate(() => window.lk.left);
    console.log(`after a 20 s cut: video both ways again ${back} ms after restoration; bob ${sid} -> ${after}; alice saw leave: ${JSON.stringify(left)}; bob's room events ${JSON.stringify(events.map((e) => e.map((x) => (typeof x === 'number' && x > 1e12 ? x - restored : x))))}`);
    assert.ok(events.some((e) => e[0] === 'reconnecting'), 'the SDK noticed and reconnected');
    assert.ok(!events.some((e) => e[0] === 'disconnected'), 'it did not give up');
    // The session was resumed: the same participant, and Alice never saw Bob leave.
    assert.equal(after, sid, 'the same participant');
    assert.deepEqual(left, [], 'alice never saw bob leave');
  } finally {
    restore();
    await a?.close();
    await b?.close();
    await server?.stop();
    net.cleanup();
  }
});

test('subscriptions: with autoSubscribe off only what is asked for arrives, from the SDK or the server API', async () => {
  const server = await startServer();
  const room = `lksub${Date.now()}`;
  let a; let b;
  try {
    a = await lkParticipant(server.base, await token('alice', room));
    b = await lkParticipant(server.base, await token('bob', room), { publish: false, connect: { autoSubscribe: false } });
    const inbound = () => b.page.evaluate(async () => {
      const pc = window.lk.room.engine.pcManager?.subscriber?.pc;
      // Audio packets, and video frames decoded (a subscriber's estimate may be probed
      // with padding on a video m-line, which counts as packets but decodes nothing).
      const out = { audio: 0, video: 0 };
      for (const s of pc ? (await pc.getStats()).values() : []) {
        if (s.type === 'inbound-rtp') out[s.kind] += (s.kind === 'video' ? s.framesDecoded : s.packetsReceived) || 0;
      }
      return out;
    });
    await waitFor(() => b.page.evaluate(() => window.lk.room.remoteParticipants.get('alice')?.trackPublications.size === 2), { what: "alice's two tracks announced to bob", timeout: 15000 });
    await new Promise((r) => setTimeout(r, 2000));
    assert.deepEqual(await inbound(), { audio: 0, video: 0 }, 'nothing arrives unasked');
    // Bob's SDK asks for Alice's video.
    await b.page.evaluate(() => [...window.lk.room.remoteParticipants.get('alice').videoTrackPublications.values()][0].setSubscribed(true));
    await waitFor(async () => (await inbound()).video > 30, { what: 'the video bob asked for', timeout: 15000 });
    assert.equal((await inbound()).audio, 0, 'not the audio');
    // The server API subscribes him to her audio too (RoomService UpdateSubscriptions).
    const audioSid = await b.page.evaluate(() => [...window.lk.room.remoteParticipants.get('alice').audioTrackPublications.values()][0].trackSid);
    await new RoomServiceClient(server.base, 'devkey', TEST_SECRET).updateSubscriptions(room, 'bob', [audioSid], true);
    await waitFor(async () => (await inbound()).audio > 50, { what: 'the audio the API subscribed bob to', timeout: 15000 });
    // He turns the video down: it stops.
    await b.page.evaluate(() => [...window.lk.room.remoteParticipants.get('alice').videoTrackPublications.values()][0].setSubscribed(false));
    // (The server stops forwarding at once; the m-line is made inactive at the next
    // negotiation.) Within 10 s, a 2 s window with no new video frame.
    let settled; let later;
    await waitFor(async () => {
      settled = await inbound();
      await new Promise((r) => setTimeout(r, 2000));
      later = await inbound();
      return later.video === settled.video;
    }, { what: 'the video stopped', timeout: 10000, interval: 0 });
    console.log(`bob's inbound (audio packets, video frames) after unsubscribing the video: ${JSON.stringify(settled)} -> ${JSON.stringify(later)}`);
    assert.ok(later.audio > settled.audio + 50, 'the audio goes on');
  } finally {
    await a?.close();
    await b?.close();
    await server.stop();
  }
});

test('end-to-end encryption: two participants with the key decode each other, a third with another key does not', async () => {
  const server = await startServer();
  const room = `lke2ee${Date.now()}`;
  let a; let b; let c;
  try {
    a = await lkParticipant(server.base, await token('alice', room), { e2ee: 'our shared secret' });
    b = await lkParticipant(server.base, await token('bob', room), { e2ee: 'our shared secret' });
    c = await lkParticipant(server.base, await token('carol', room), { e2ee: 'a different key', publish: false });
    c.page.removeAllListeners('console'); // its SDK logs every frame it cannot decrypt
    // Frames decoded and shown of `from`'s video at `p` (the video element's count).
    const frames = (p, from) => p.page.evaluate((from) => {
      const v = document.getElementById(`${from}-video`);
      return v ? v.getVideoPlaybackQuality().totalVideoFrames : -1;
    }, from);
    await waitFor(async () => (await frames(a, 'bob')) > 30 && (await frames(b, 'alice')) > 30, { what: 'alice and bob decode each other', timeout: 30000 });
    const encrypted = await b.page.evaluate(() => [...window.lk.room.remoteParticipants.get('alice').trackPublications.values()].map((p) => [p.kind, p.isEncrypted]));
    console.log("alice's tracks at bob (kind, isEncrypted):", JSON.stringify(encrypted));
    assert.ok(encrypted.length === 2 && encrypted.every(([, e]) => e), 'shown as encrypted');
    // Carol receives the same packets (the server forwards them untouched) but cannot
    // decrypt them.
    await waitFor(() => c.page.evaluate(async () => {
      const pc = window.lk.room.engine.pcManager.subscriber?.pc;
      const s = pc ? [...(await pc.getStats()).values()].filter((x) => x.type === 'inbound-rtp' && x.kind === 'video') : [];
      return s.reduce((n, x) => n + (x.packetsReceived || 0), 0) > 200;
    }), { what: 'encrypted video packets at carol', timeout: 20000 });
    await new Promise((r) => setTimeout(r, 2000));
    const carol = [await frames(c, 'alice'), await frames(c, 'bob')];
    console.log(`frames shown at carol (another key): alice ${carol[0]}, bob ${carol[1]}; at bob from alice: ${await frames(b, 'alice')}`);
    assert.ok(carol.every((n) => n <= 1), `carol decodes nothing: ${carol}`);
  } finally {
    await a?.close();
    await b?.close();
    await c?.close();
    await server.stop();
  }
});

// Two nodes of a cluster on one redis-server: LiveKit clients connect to different nodes
// for one room; the node that is not the room's home relays its client's /rtc socket
// there (the client stays on the node it reached), and they see each other.
test('livekit-client participants entering through two nodes of a cluster see each other', { skip: !have('redis-server') && 'redis-server is not installed' }, async () => {
  const redis = await redisServer();
  const na = await startServer(['--redis-url', redis.url, '--node-id', 'a']);
  const nb = await startServer(['--redis-url', redis.url, '--node-id', 'b']);
  const room = `lkcluster${Date.now()}`;
  let a; let b;
  try {
    a = await lkParticipant(na.base, await token('alice', room));
    b = await lkParticipant(nb.base, await token('bob', room));
    for (const [me, other] of [[a, 'bob'], [b, 'alice']]) {
      await waitFor(async () => {
        const r = await received(me.page);
        return r.framesDecoded > 30 && r.audio > 50;
      }, { timeout: 30000, what: `frames and audio of ${other} received` });
    }
    assert.equal((await relayedSessions(na.base)) + (await relayedSessions(nb.base)), 1, 'one session relayed to the home');
  } finally {
    await a?.close();
    await b?.close();
    na.stop();
    nb.stop();
    redis.stop();
  }
});
