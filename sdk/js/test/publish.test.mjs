// The SDK's publisher-side negotiation and room bookkeeping under node's test runner,
// with a scripted WebSocket and a stand-in peer connection (no browser): offers go one at
// a time, each waits for its answer, a refused one is rolled back; sources are declared
// per m-line; track_published/unpublished keep each participant's track list; and the
// connection-quality rating.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SwitchboardClient, rateQuality, tokenRoom } from '../src/client.js';

class FakeSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 3;
  static last = null;
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.readyState = FakeSocket.CONNECTING;
    FakeSocket.last = this;
    queueMicrotask(() => { this.readyState = FakeSocket.OPEN; this.onopen?.(); });
  }
  send(text) { this.sent.push(JSON.parse(text)); }
  close(code = 1000, reason = '') { this.readyState = FakeSocket.CLOSED; this.onclose?.({ code, reason }); }
  say(msg) { this.onmessage?.({ data: JSON.stringify(msg) }); }
}

/** An RTCPeerConnection stand-in: offers count up, descriptions are recorded. */
class FakePc {
  constructor() { this.signalingState = 'stable'; this.offers = 0; this.transceivers = []; this.remote = []; }
  async createOffer({ iceRestart = false } = {}) { return { type: 'offer', sdp: `offer ${++this.offers}${iceRestart ? ' restart' : ''}` }; }
  async setLocalDescription(d) {
    if (d.type === 'rollback') { this.signalingState = 'stable'; this.rolledBack = true; return; }
    this.localDescription = d;
    this.signalingState = 'have-local-offer';
  }
  async setRemoteDescription(d) { this.remote.push(d.sdp); this.signalingState = 'stable'; }
  getTransceivers() { return this.transceivers; }
  close() { this.closed = true; }
}

const tick = () => new Promise((r) => setTimeout(r, 0));
const me = { id: 1, identity: 'me', name: 'Me', reconnecting: false, kind: 'standard', tracks: [], audio_muted: false, video_muted: false, metadata: '', joined_at: 0 };
const bob = { ...me, id: 2, identity: 'bob', name: 'Bob', tracks: [{ id: 7, kind: 'video', simulcast: [], source: 'camera' }] };

async function joinedClient() {
  const c = new SwitchboardClient('ws://a.test/ws', { WebSocket: /** @type {any} */ (FakeSocket) });
  const done = c.connect('tok');
  await tick();
  const ws = FakeSocket.last;
  ws.say({ type: 'joined', version: 1, participant: me, others: [bob], resume_token: 'rt', ice_servers: [] });
  await done;
  const pc = new FakePc();
  c.pubPc = /** @type {any} */ (pc);
  return { c, ws, pc };
}
const offers = (ws) => ws.sent.filter((m) => m.type === 'publish_offer');

test('offers go one at a time, each after the previous answer, with their sources', async () => {
  const { c, ws, pc } = await joinedClient();
  const cam = { mid: '0', direction: 'sendonly', currentDirection: 'sendonly', sender: {} };
  const screen = { mid: '1', direction: 'sendonly', currentDirection: null, sender: {} };
  const gone = { mid: '2', direction: 'inactive', currentDirection: 'inactive', sender: {} };
  pc.transceivers = [cam, screen, gone];
  c.sources.set(/** @type {any} */ (cam), 'camera');
  c.sources.set(/** @type {any} */ (screen), 'screen_share');
  c.sources.set(/** @type {any} */ (gone), 'screen_share');
  const first = c.negotiate();
  const second = c.negotiate({ iceRestart: true });
  await tick();
  assert.equal(offers(ws).length, 1, 'the second offer waits for the first answer');
  assert.deepEqual(offers(ws)[0], { type: 'publish_offer', sdp: 'offer 1', sources: { 0: 'camera', 1: 'screen_share' } });
  ws.say({ type: 'publish_answer', sdp: 'answer 1' });
  await first;
  await tick();
  assert.equal(offers(ws).length, 2);
  assert.equal(offers(ws)[1].sdp, 'offer 2 restart');
  ws.say({ type: 'publish_answer', sdp: 'answer 2' });
  await second;
  assert.deepEqual(pc.remote, ['answer 1', 'answer 2']);
  c.leave();
});

test('a refused offer rejects with the server code and is rolled back; the next one goes', async () => {
  const { c, ws, pc } = await joinedClient();
  const refused = c.negotiate();
  await tick();
  ws.say({ type: 'error', code: 'not_allowed', message: 'screen_share is not granted' });
  await assert.rejects(refused, (e) => /** @type {any} */ (e).code === 'not_allowed');
  assert.equal(pc.rolledBack, true);
  assert.equal(pc.signalingState, 'stable');
  const next = c.negotiate();
  await tick();
  assert.equal(offers(ws).length, 2);
  ws.say({ type: 'publish_answer', sdp: 'ok' });
  await next;
  c.leave();
});

test('an offer in flight when the socket drops fails at once (not after the timeout)', async () => {
  const { c, ws } = await joinedClient();
  c.reconnectDelayMs = 60000;
  const pending = c.negotiate();
  await tick();
  const t0 = Date.now();
  ws.close(1006, 'cut');
  await assert.rejects(pending, (e) => /** @type {any} */ (e).code === 'closed');
  assert.ok(Date.now() - t0 < 1000);
  c.leave();
});

test('track_published and track_unpublished keep the participant track lists', async () => {
  const { c, ws } = await joinedClient();
  ws.say({ type: 'track_published', participant: 2, track: { id: 9, kind: 'video', simulcast: [], source: 'screen_share' } });
  assert.equal(c.sourceOf(2, 9), 'screen_share');
  assert.equal(c.sourceOf(2, 7), 'camera');
  ws.say({ type: 'track_unpublished', participant: 2, track: 9 });
  assert.deepEqual(c.participants.get(2)?.tracks.map((t) => t.id), [7]);
  assert.equal(c.sourceOf(2, 9), 'unknown');
  c.leave();
});

test('connection quality: loss, jitter, freezes, pauses and layer moves', () => {
  const ok = { packetsReceived: 500, packetsLost: 0, jitterMs: 5, freezes: 0, paused: false, switching: false };
  assert.equal(rateQuality(ok), 'excellent');
  assert.equal(rateQuality({ ...ok, packetsLost: 15 }), 'good');
  assert.equal(rateQuality({ ...ok, switching: true }), 'good');
  assert.equal(rateQuality({ ...ok, jitterMs: 40 }), 'good');
  assert.equal(rateQuality({ ...ok, packetsLost: 60 }), 'poor');
  assert.equal(rateQuality({ ...ok, freezes: 1 }), 'poor');
  assert.equal(rateQuality({ ...ok, paused: true }), 'lost');
  assert.equal(rateQuality({ ...ok, packetsReceived: 0 }), 'lost');
  assert.equal(rateQuality({ ...ok, packetsLost: -3 }), 'excellent', 'duplicates do not count as loss');
});

test('tokenRoom reads the room claim of a token, null when unreadable', () => {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  assert.equal(tokenRoom(`${b64({ alg: 'HS256' })}.${b64({ video: { room: 'ünï-room' } })}.sig`), 'ünï-room', 'UTF-8 claims');
  assert.equal(tokenRoom(`${b64({ alg: 'HS256' })}.${b64({ video: { room: 'demo_1' } })}.sig`), 'demo_1');
  assert.equal(tokenRoom('garbage'), null);
  assert.equal(tokenRoom(`a.${b64({ video: {} })}.c`), null);
});
