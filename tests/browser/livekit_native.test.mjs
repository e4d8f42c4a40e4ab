// A native, non-browser LiveKit SDK (issue 32): `@livekit/rtc-node` from npm, which runs
// LiveKit's own Rust SDK and WebRTC stack, joins the room this test process is in. It
// publishes an 880 Hz tone from an `AudioSource`, which a livekit-client participant in
// Chromium receives (the frequency measured in the page), and it receives the browser's
// 440 Hz tone (measured here from the decoded frames).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AccessToken } from 'livekit-server-sdk';
import { spawn, execFileSync } from 'node:child_process';
import { startServer, openLiveKitTonePage, TEST_SECRET, canShapeLinks } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));

const token = async (identity, room) => {
  const at = new AccessToken('devkey', TEST_SECRET, { identity, ttl: '10m' });
  at.addGrant({ roomJoin: true, room, canPublish: true, canSubscribe: true });
  return at.toJwt();
};



// A namespace of the test's own with one interface beside loopback (one end of a veth pair
// whose other end is in it too: this kernel has no dummy interfaces): LiveKit's WebRTC
// stack ignores loopback when it gathers candidates.
function ownNet(tag) {
  const ns = `sbnat${tag}`;
  const ip = (...a) => execFileSync('ip', a, { stdio: ['ignore', 'ignore', 'pipe'] });
  const cleanup = () => { try { ip('netns', 'del', ns); } catch {} };
  cleanup();
  ip('netns', 'add', ns);
  ip('-n', ns, 'link', 'set', 'lo', 'up');
  ip('-n', ns, 'link', 'add', 'n0', 'type', 'veth', 'peer', 'name', 'n1');
  ip('-n', ns, 'addr', 'add', '10.203.0.1/24', 'dev', 'n0');
  ip('-n', ns, 'link', 'set', 'n0', 'up');
  ip('-n', ns, 'link', 'set', 'n1', 'up');
  return { ns, addr: '10.203.0.1', cleanup };
}

// The native SDK in its process (`lk_native_peer.mjs`), inside `ns`: resolves with its report.
function nativePeer(ns, url, jwt, seconds) {
  const p = spawn('ip', ['netns', 'exec', ns, process.execPath, join(here, 'lk_native_peer.mjs'), url, jwt, String(seconds)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = ''; let err = '';
  p.stdout.on('data', (d) => { out += d; });
  p.stderr.on('data', (d) => { err += d; });
  return new Promise((resolve, reject) => p.on('exit', (code) => {
    const line = out.split('\n').find((l) => l.startsWith('{"samples"'));
    if (line) resolve(JSON.parse(line)); else reject(new Error(`native peer exited ${code}: ${err.slice(-2000)}`));
  }));
}

test('a native LiveKit SDK (@livekit/rtc-node) and a browser hear each other', { skip: !canShapeLinks() && 'needs root and iproute2 to create a namespace' }, async () => {
  const net = ownNet(String((process.pid + 13) % 10000));
  let server; let page;
  try {
    server = await startServer([], {}, { netns: net.ns, addr: net.addr });
    const roomName = `lknative${Date.now()}`;
    const url = server.base.replace('http', 'ws');
    // The browser: livekit-client, publishing its fake microphone (a 440 Hz tone, audio
    // processing off so that the tone stays a tone).
    page = await openLiveKitTonePage(server.base, 440, { netns: net.ns, secureOrigin: server.base });
    await page.page.evaluate(async ({ url, jwt }) => {
      const { Room, RoomEvent } = window.LivekitClient;
      const room = new Room({ audioCaptureDefaults: { noiseSuppression: false, echoCancellation: false, autoGainControl: false } });
      window.heard = [];
      room.on(RoomEvent.TrackSubscribed, (track, pub, participant) => {
        if (track.kind !== 'audio' || participant.identity !== 'native') return;
        const el = track.attach();
        document.body.appendChild(el);
        window.sbLoudest(track.mediaStreamTrack, window.heard); // its loudest bin, once a second
      });
      await room.connect(url, jwt);
      await room.localParticipant.setMicrophoneEnabled(true);
      window.room = room;
    }, { url, jwt: await token('browser', roomName) });

    const native = await nativePeer(net.ns, url, await token('native', roomName), 8);
    const atBrowser = (await page.page.evaluate(() => window.heard)).pop();
    console.log(`native SDK received ${native.samples} samples from the browser, ${native.hz.toFixed(1)} Hz; the browser hears ${JSON.stringify(atBrowser)} (${native.sent} frames of 10 ms sent)`);
    assert.ok(native.samples >= 48000, `the native SDK received the browser's audio (${native.samples} samples)`);
    assert.ok(Math.abs(native.hz - 440) < 15, `the browser's 440 Hz tone at the native SDK: ${native.hz} Hz`);
    assert.ok(atBrowser && Math.abs(atBrowser.hz - 880) < 15 && atBrowser.db > -70, `the native SDK's 880 Hz tone at the browser: ${JSON.stringify(atBrowser)}`);
  } finally {
    await page?.close();
    await server?.stop();
    net.cleanup();
  }
});
