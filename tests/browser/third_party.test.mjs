// Clients nobody here wrote: Eyevinn's whip-web-client publishes through WHIP, and
// Eyevinn's webrtc-player plays it back through WHEP, by identity and through the
// speaker view, from a page on another origin (so CORS is exercised as in a real
// deployment). Both players must show the publisher's video with its audio in one
// stream: 0.11 binds its <video> to the first stream `ontrack` gives, as most
// hand-written pages do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { startServer, openParticipant, waitFor, sleep, devToken } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));

// The page and its bundle, served from 127.0.0.1 on a port of its own.
async function servePage() {
  const dir = mkdtempSync(join(tmpdir(), 'sb-third-party-'));
  await build({
    entryPoints: [join(here, 'third_party/entry.mjs')], bundle: true, format: 'iife',
    platform: 'browser', outfile: join(dir, 'bundle.js'), logLevel: 'warning',
  });
  const files = {
    '/': ['text/html', readFileSync(join(here, 'third_party/index.html'))],
    '/bundle.js': ['text/javascript', readFileSync(join(dir, 'bundle.js'))],
  };
  const srv = createServer((req, res) => {
    if (req.url === '/favicon.ico') { res.writeHead(204).end(); return; }
    const f = files[req.url];
    if (!f) { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': f[0] }).end(f[1]);
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${srv.address().port}/`,
    close: () => { srv.close(); rmSync(dir, { recursive: true, force: true }); },
  };
}

// Play `endpoint` with webrtc-player `version` on a fresh page; resolves once its <video>
// has tracks. The player's own default ICE server (a public STUN host) is replaced by none.
async function play(pageUrl, version, endpoint, token) {
  const p = await openParticipant(pageUrl);
  await p.page.evaluate(async ({ version, endpoint, token }) => {
    const video = document.createElement('video');
    video.muted = true; video.autoplay = true; video.playsInline = true;
    document.body.append(video);
    const player = new window.players[version]({ video, type: 'whep', iceServers: [] });
    window.player = player; window.video = video;
    // 0.11 sends no Authorization header: the token goes in the URL (RFC 6750 §2.3).
    const url = new URL(endpoint);
    if (version === '0.11') url.searchParams.set('access_token', token);
    await player.load(url, `Bearer ${token}`);
  }, { version, endpoint, token });
  return p;
}

// What a player page shows: the tracks on its <video>, its size, frames, audio packets.
const shown = (page) => page.evaluate(async () => {
  const v = window.video; const s = v.srcObject;
  let audioPackets = 0;
  const pc = window.player.peer;
  if (pc) for (const st of (await pc.getStats()).values()) if (st.type === 'inbound-rtp' && st.kind === 'audio') audioPackets += st.packetsReceived || 0;
  return {
    videoTracks: s ? s.getVideoTracks().length : 0, audioTracks: s ? s.getAudioTracks().length : 0,
    width: v.videoWidth, frames: v.getVideoPlaybackQuality().totalVideoFrames, audioPackets,
  };
});

test("Eyevinn's WHIP client publishes; Eyevinn's WHEP player (0.11 and 0.13) plays it with audio, by identity and as the speaker view", async () => {
  const server = await startServer();
  const page = await servePage();
  const room = `eyevinn${Date.now()}`;
  const pubToken = devToken({ room, roomJoin: true, canPublish: true, canSubscribe: false }, 600, 'eyevinn-publisher');
  const pub = await openParticipant(page.url);
  const players = [];
  let cases = [];
  try {
    // The WHIP client, as its README shows it (trickle on: it asks OPTIONS for ICE
    // servers, then PATCHes its candidates).
    await pub.page.evaluate(async ({ endpoint, token }) => {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 360, frameRate: 15 } });
      const client = new window.WHIPClient({ endpoint, opts: { authkey: token, iceServers: [] } });
      window.whip = client;
      await client.ingest(stream);
    }, { endpoint: `${server.base}/whip/${room}`, token: pubToken });
    await waitFor(() => pub.page.evaluate(() => window.whip.getICEConnectionState() === 'connected' || window.whip.getICEConnectionState() === 'completed'),
      { what: 'the WHIP client connected', timeout: 20000 });
    const resource = await pub.page.evaluate(() => window.whip.getResourceUrl());
    assert.match(resource, new RegExp(`/whip/${room}/`), 'the WHIP client found its resource (Location)');

    const watch = devToken({ room, roomJoin: true, canSubscribe: true }, 600, 'eyevinn-viewer');
    cases = [
      ['0.11', `${server.base}/whep/${room}/eyevinn-publisher`],
      ['0.13', `${server.base}/whep/${room}/eyevinn-publisher`],
      ['0.11', `${server.base}/whep/${room}`], // the speaker view
    ];
    for (const [version, endpoint] of cases) {
      const p = await play(page.url, version, endpoint, watch);
      players.push(p);
      const what = `webrtc-player ${version} on ${endpoint.slice(server.base.length)}`;
      await waitFor(async () => (await shown(p.page)).width > 0, { what: `${what}: video shown`, timeout: 30000 });
      const s1 = await shown(p.page);
      await sleep(2000);
      const s2 = await shown(p.page);
      console.log(what, JSON.stringify(s1), '->', JSON.stringify(s2));
      assert.equal(s2.videoTracks, 1, `${what}: the <video> has the video track`);
      assert.equal(s2.audioTracks, 1, `${what}: the <video> has the audio track too (one MediaStream)`);
      assert.ok(s2.frames > s1.frames + 10, `${what}: frames keep playing`);
      assert.ok(s2.audioPackets > s1.audioPackets + 50, `${what}: audio arrives`);
    }
    // 0.13's unload DELETEs its resource (a second DELETE is then 404); 0.11 only closes
    // its connection (the server removes it when ICE consent lapses).
    for (const [p, [version]] of players.map((p, i) => [p, cases[i]])) {
      if (version === '0.11') { await p.page.evaluate(() => window.player.destroy()); continue; }
      const resource = await p.page.evaluate(async () => { const r = window.player.adapter.resource; await window.player.unload(); return r; });
      assert.match(resource, new RegExp(`/whep/${room}/`), 'the player found its resource (Location)');
      assert.equal((await fetch(resource, { method: 'DELETE' })).status, 404, `unload ended ${resource}`);
    }
    await pub.page.evaluate(() => window.whip.destroy());
    assert.equal((await fetch(resource, { method: 'DELETE' })).status, 404, `destroy ended ${resource}`);
  } finally {
    for (const p of players) await p.close();
    await pub.close();
    page.close();
    server.stop();
  }
});

// Players that arrive before their publisher (a page opened before the stream starts, or
// both started by one script) must receive the tracks when they appear, as
// docs/whip-whep.md promises: the speaker view before and with the WHIP publisher. All
// three players use one viewing token, as a site hands the same token to every player:
// viewers coexist (before: each new player replaced the one before it, which then played
// nothing at all).
test("Eyevinn's WHEP players started before and with their WHIP publisher, on one viewing token, all play", async () => {
  const server = await startServer();
  const page = await servePage();
  const room = `early${Date.now()}`;
  const pubToken = devToken({ room, roomJoin: true, canPublish: true, canSubscribe: false }, 600, 'early-publisher');
  const watch = devToken({ room, roomJoin: true, canSubscribe: true }, 600, 'audience');
  const pub = await openParticipant(page.url);
  const players = [];
  try {
    const ingest = () => pub.page.evaluate(async ({ endpoint, token }) => {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 360, frameRate: 15 } });
      const client = new window.WHIPClient({ endpoint, opts: { authkey: token, iceServers: [] } });
      window.whip = client;
      await client.ingest(stream);
    }, { endpoint: `${server.base}/whip/${room}`, token: pubToken });
    const speakerView = `${server.base}/whep/${room}`;
    // Before: two players up for 3 s with nobody publishing.
    players.push(['0.13 before', await play(page.url, '0.13', speakerView, watch)]);
    players.push(['0.11 before', await play(page.url, '0.11', speakerView, watch)]);
    await sleep(3000);
    // With: a third player and the publisher started together.
    const [withPlayer] = await Promise.all([play(page.url, '0.13', speakerView, watch), ingest()]);
    players.push(['0.13 with', withPlayer]);
    for (const [what, p] of players) {
      await waitFor(async () => (await shown(p.page)).width > 0, { what: `${what}: video shown`, timeout: 30000 });
      // Playing: a 2 s window with more than 10 frames and 50 audio packets, within the
      // first five windows (a player's first seconds under a loaded CI may stall on its
      // first keyframe; what counts is that it then plays).
      let s1 = await shown(p.page);
      let s2 = s1;
      for (let w = 0; w < 5; w++) {
        await sleep(2000);
        s2 = await shown(p.page);
        console.log(what, JSON.stringify(s1), '->', JSON.stringify(s2));
        if (s2.frames > s1.frames + 10 && s2.audioPackets > s1.audioPackets + 50) break;
        s1 = s2;
      }
      assert.ok(s2.frames > s1.frames + 10, `${what}: frames keep playing`);
      assert.ok(s2.audioPackets > s1.audioPackets + 50, `${what}: audio arrives`);
    }
  } finally {
    for (const [, p] of players) await p.close();
    await pub.close();
    page.close();
    server.stop();
  }
});
