// The SDK's signaling logic under node's test runner, against a scripted WebSocket (no
// server, no browser): what it sends, how it reads the server's answers, its events.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { SwitchboardClient, PROTOCOL_VERSION } from '../src/client.js';

/** A WebSocket stand-in: records what is sent; the test plays the server. */
class FakeSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;
  static opened = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.readyState = FakeSocket.CONNECTING;
    FakeSocket.opened.push(this);
    queueMicrotask(() => {
      this.readyState = FakeSocket.OPEN;
      this.onopen?.();
    });
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close(code = 1000, reason = '') {
    if (this.readyState === FakeSocket.CLOSED) return;
    this.readyState = FakeSocket.CLOSED;
    this.onclose?.({ code, reason });
  }
  /** The server says `msg`. */
  say(msg) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
}

const tick = () => new Promise((r) => setTimeout(r, 0));
const alice = { id: 1, identity: 'alice', name: 'Alice', reconnecting: false, kind: 'standard', tracks: [], audio_muted: false, video_muted: false, metadata: '', joined_at: 0 };
const bob = { ...alice, id: 2, identity: 'bob', name: 'Bob' };
const joined = (me, others = []) => ({ type: 'joined', version: 1, participant: me, others, resume_token: 'rt', ice_servers: [] });

function client() {
  FakeSocket.opened = [];
  return new SwitchboardClient('ws://a.test/ws', { WebSocket: /** @type {any} */ (FakeSocket) });
}

test('connect sends join with the protocol version and resolves with joined', async () => {
  const c = client();
  const seen = [];
  c.on('participant_joined', (p) => seen.push(p.name));
  const done = c.connect('tok');
  await tick();
  const ws = FakeSocket.opened[0];
  assert.equal(ws.url, 'ws://a.test/ws');
  assert.deepEqual(ws.sent[0], { type: 'join', token: 'tok', version: PROTOCOL_VERSION, resume: true });
  ws.say(joined(alice, [bob]));
  const msg = await done;
  assert.equal(msg.participant.identity, 'alice');
  assert.equal(c.me?.id, 1);
  assert.deepEqual([...c.participants.keys()], [2]);
  assert.deepEqual(seen, ['Bob']);
  c.leave();
});

test('a refused join rejects with the server code', async () => {
  const c = client();
  const done = c.connect('tok');
  await tick();
  FakeSocket.opened[0].say({ type: 'error', code: 'room_full', message: 'the room is full (2 participants)' });
  await assert.rejects(done, (e) => e.code === 'room_full');
  FakeSocket.opened[0].close(4003, 'room full');
});

test('moved: the same join goes to the home node', async () => {
  const c = client();
  const done = c.connect('tok');
  await tick();
  FakeSocket.opened[0].say({ type: 'moved', url: 'ws://home.test/ws' });
  await tick();
  const home = FakeSocket.opened[1];
  assert.equal(home.url, 'ws://home.test/ws');
  assert.equal(home.sent[0].type, 'join');
  assert.equal(home.sent[0].token, 'tok');
  home.say(joined(alice));
  await done;
  assert.equal(c.wsUrl, 'ws://home.test/ws', 'later reconnections go to the home too');
  c.leave();
});

test('room events reach listeners, and on() returns what stops them', async () => {
  const c = client();
  const done = c.connect('tok');
  await tick();
  const ws = FakeSocket.opened[0];
  ws.say(joined(alice));
  await done;
  const data = [];
  const stop = c.on('data', (d) => data.push(d.payload));
  const left = [];
  c.on('participant_left', (d) => left.push(d.participant));
  ws.say({ type: 'participant_joined', participant: bob });
  assert.deepEqual([...c.participants.keys()], [2]);
  ws.say({ type: 'data', from: 2, payload: 'hi' });
  stop();
  ws.say({ type: 'data', from: 2, payload: 'unheard' });
  ws.say({ type: 'participant_left', participant: 2, reason: 'left' });
  assert.deepEqual(data, ['hi']);
  assert.deepEqual(left, [2]);
  assert.equal(c.participants.size, 0);
  ws.say({ type: 'mute_changed', participant: 1, kind: 'audio', muted: true, by_admin: true });
  c.sendData('hello', 'chat');
  c.setViewport(7, 639.6, 360.2, true);
  assert.deepEqual(ws.sent.slice(1), [
    { type: 'data', payload: 'hello', topic: 'chat' },
    { type: 'viewport', track: 7, width: 640, height: 360, visible: true },
  ]);
  c.leave();
  assert.deepEqual(ws.sent.at(-1), { type: 'leave' });
  assert.equal(ws.readyState, FakeSocket.CLOSED);
});

test('a dropped socket is resumed with the resume token', async () => {
  const c = client();
  c.reconnectDelayMs = 1;
  const states = [];
  c.on('connection', (s) => states.push(s.state));
  const done = c.connect('tok');
  await tick();
  FakeSocket.opened[0].say(joined(alice));
  await done;
  FakeSocket.opened[0].close(1006, 'network');
  await new Promise((r) => setTimeout(r, 20));
  const again = FakeSocket.opened[1];
  assert.deepEqual(again.sent[0], { type: 'resume', token: 'rt', access_token: 'tok' });
  again.say({ type: 'resumed', participant: alice, others: [], resume_token: 'rt2' });
  await tick();
  assert.deepEqual(states, ['reconnecting', 'connected']);
  assert.equal(c.resumeToken, 'rt2');
  c.leave();
});

test("docs/sdk.md shows the example that the type check and the browser test run", () => {
  const doc = readFileSync(new URL('../../../docs/sdk.md', import.meta.url), 'utf8');
  const block = doc.match(/```js\n([\s\S]*?)```/)?.[1];
  const example = readFileSync(new URL('../examples/hello-room.js', import.meta.url), 'utf8');
  assert.equal(block, example);
  assert.ok(example.trim().split('\n').length <= 20, 'a 20-line example');
});
