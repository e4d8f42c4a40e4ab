// A cluster behind one public name, as operators deploy it: two nodes on one
// redis-server behind nginx terminating TLS (a self-signed certificate) with `least_conn`
// balancing, so two browsers' WebSockets land on different nodes. Both Chromium
// participants load https://<proxy>/… and decode each other; neither is ever sent to a
// node's own URL (the node that is not the room's home relays the session to it).
// And a WHIP publisher and WHEP player through the same proxy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, openParticipant, waitForTileVideo, waitFor, sleep, devToken, metricsText, redisServer, freePort, waitForPort, have } from './lib.mjs';

const missing = ['redis-server', 'nginx', 'openssl'].filter((c) => !have(c));

// nginx in the foreground with its own prefix: TLS on `port`, both nodes upstream.
async function nginx(port, upstreams) {
  const dir = mkdtempSync(join(tmpdir(), 'sb-nginx-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  writeFileSync(join(dir, 'nginx.conf'), `
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  upstream switchboard { least_conn; ${upstreams.map((u) => `server ${u};`).join(' ')} }
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${dir}/cert.pem; ssl_certificate_key ${dir}/key.pem;
    location / {
      proxy_pass http://switchboard;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_read_timeout 3600s;
    }
  }
}
`);
  const proc = spawn('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: 'ignore' });
  await waitForPort(port);
  return { stop: () => { proc.kill(); rmSync(dir, { recursive: true, force: true }); } };
}

test('two browsers through nginx (TLS, least_conn) to a two-node cluster see each other on one public name', { skip: missing.length > 0 && `missing ${missing.join(', ')}` }, async () => {
  const redis = await redisServer();
  const a = await startServer(['--redis-url', redis.url, '--node-id', 'a']);
  const b = await startServer(['--redis-url', redis.url, '--node-id', 'b']);
  const port = await freePort();
  const proxy = await nginx(port, [a.base, b.base].map((u) => u.replace('http://', '')));
  const origin = `https://127.0.0.1:${port}`;
  const room = `tls${Date.now()}`;
  let pa, pb;
  try {
    const tls = { args: ['--ignore-certificate-errors'] };
    pa = await openParticipant(`${origin}/?room=${room}&name=ann&autojoin=1&quality=low`, tls);
    pb = await openParticipant(`${origin}/?room=${room}&name=bob&autojoin=1&quality=low`, tls);
    await waitForTileVideo(pa.page, 'bob');
    await waitForTileVideo(pb.page, 'ann');
    const urls = await Promise.all([pa, pb].map((p) => p.page.evaluate(() => window.sb.client.wsUrl)));
    assert.deepEqual(urls, [`wss://127.0.0.1:${port}/ws`, `wss://127.0.0.1:${port}/ws`], `both stay on the public name: ${urls}`);
    // least_conn put the two sockets on different nodes: the one that is not the home
    // relayed its session.
    const relayed = async (n) => Number((await metricsText(n.base)).match(/^switchboard_cluster_relayed_sessions_total (\d+)/m)?.[1] ?? 0);
    assert.equal((await relayed(a)) + (await relayed(b)), 1, 'one session relayed to the home');
  } finally {
    await pa?.close();
    await pb?.close();
    proxy.stop();
    a.stop();
    b.stop();
    redis.stop();
  }
});

// A WHIP publisher and a WHEP player, plain pages on the public name: every request
// (POST, the session's DELETE) goes through the proxy to whichever node it picks, which
// forwards it to the room's home; the answers never name a node's own URL.
test('WHIP publish and WHEP play through nginx (TLS) to a two-node cluster', { skip: missing.length > 0 && `missing ${missing.join(', ')}` }, async () => {
  const redis = await redisServer();
  const a = await startServer(['--redis-url', redis.url, '--node-id', 'a']);
  const b = await startServer(['--redis-url', redis.url, '--node-id', 'b']);
  const port = await freePort();
  const proxy = await nginx(port, [a.base, b.base].map((u) => u.replace('http://', '')));
  const origin = `https://127.0.0.1:${port}`;
  const room = `tlswhip${Date.now()}`;
  const tls = { args: ['--ignore-certificate-errors'] };
  let pub, player;
  try {
    pub = await openParticipant(`${origin}/`, tls);
    player = await openParticipant(`${origin}/`, tls);
    const token = devToken({ room, roomJoin: true, canPublish: true, canSubscribe: false }, 600, 'tls-publisher');
    const published = await pub.page.evaluate(async ({ room, token }) => {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 360, frameRate: 15 } });
      const pc = new RTCPeerConnection();
      for (const t of stream.getTracks()) pc.addTransceiver(t, { direction: 'sendonly' });
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((resolve) => {
        if (pc.iceGatheringState === 'complete') return resolve();
        pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
        setTimeout(resolve, 2000);
      });
      const res = await fetch(`/whip/${room}`, {
        method: 'POST', headers: { 'content-type': 'application/sdp', authorization: `Bearer ${token}` }, body: pc.localDescription.sdp,
      });
      if (res.status !== 201) return { status: res.status, error: await res.text() };
      await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
      window.whipPc = pc;
      return { status: res.status, location: res.headers.get('location') };
    }, { room, token });
    assert.equal(published.status, 201, JSON.stringify(published));
    assert.match(published.location, new RegExp(`^/whip/${room}/`), 'the WHIP session is on the public name');
    const watch = devToken({ room, roomJoin: true, canSubscribe: true }, 600, 'tls-player');
    const played = await player.page.evaluate(async ({ room, watch }) => {
      const pc = new RTCPeerConnection();
      pc.addTransceiver('audio', { direction: 'recvonly' });
      pc.addTransceiver('video', { direction: 'recvonly' });
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((resolve) => {
        if (pc.iceGatheringState === 'complete') return resolve();
        pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
        setTimeout(resolve, 2000);
      });
      const res = await fetch(`/whep/${room}/tls-publisher`, {
        method: 'POST', headers: { 'content-type': 'application/sdp', authorization: `Bearer ${watch}` }, body: pc.localDescription.sdp,
      });
      if (res.status !== 201) return { status: res.status, error: await res.text() };
      await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
      window.whepPc = pc;
      return { status: res.status, location: res.headers.get('location') };
    }, { room, watch });
    assert.equal(played.status, 201, JSON.stringify(played));
    assert.match(played.location, new RegExp(`^/whep/${room}/`), 'the WHEP session is on the public name');
    const decoded = () => player.page.evaluate(async () => {
      let f = 0, a = 0;
      for (const s of (await window.whepPc.getStats()).values()) {
        if (s.type === 'inbound-rtp' && s.kind === 'video') f += s.framesDecoded || 0;
        if (s.type === 'inbound-rtp' && s.kind === 'audio') a += s.packetsReceived || 0;
      }
      return { f, a };
    });
    await waitFor(async () => (await decoded()).f > 0, { what: 'WHEP frames decoded through the proxy', timeout: 30000 });
    const s1 = await decoded();
    await sleep(2000);
    const s2 = await decoded();
    assert.ok(s2.f > s1.f + 10 && s2.a > s1.a + 50, `video and audio keep arriving: ${JSON.stringify([s1, s2])}`);
    // The sessions end through the proxy too (the DELETE may reach either node).
    for (const [page, location] of [[player, played.location], [pub, published.location]]) {
      const status = await page.page.evaluate(async (l) => (await fetch(l, { method: 'DELETE' })).status, location);
      assert.equal(status, 200, `DELETE ${location}`);
    }
    const forwarded = async (n) => Number((await metricsText(n.base)).match(/^switchboard_cluster_forwarded_requests_total (\d+)/m)?.[1] ?? 0);
    console.log(`# requests forwarded between the nodes: ${(await forwarded(a)) + (await forwarded(b))} of 4`);
  } finally {
    await pub?.close();
    await player?.close();
    proxy.stop();
    a.stop();
    b.stop();
    redis.stop();
  }
});
