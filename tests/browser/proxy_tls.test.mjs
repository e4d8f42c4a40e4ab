// A cluster behind one public name, as operators deploy it: two nodes on one
// redis-server behind nginx terminating TLS (a self-signed certificate) with `least_conn`
// balancing, so two browsers' WebSockets land on different nodes. Both Chromium
// participants load https://<proxy>/… and decode each other; neither is ever sent to a
// node's own URL (the node that is not the room's home relays the session to it).
// And a WHIP publisher and WHEP player through the same proxy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, openParticipant, waitForTileVideo, waitFor, sleep, devToken, metricsText, redisServer, freePort, waitForPort, have, whipPublish, whepPlay, inboundCounts, wsJoin, relayedSessions } from './lib.mjs';

const missing = ['redis-server', 'nginx', 'openssl'].filter((c) => !have(c));

// A private CA and a certificate for 127.0.0.1 it signed, in `dir`: what the nodes trust
// through SSL_CERT_FILE (ca.pem) and nginx serves (cert.pem, key.pem).
function privateCa(dir) {
  const f = (n) => join(dir, n);
  writeFileSync(f('ext.cnf'), 'basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  for (const args of [
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=Switchboard test CA', '-keyout', f('ca-key.pem'), '-out', f('ca.pem')],
    ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', f('key.pem'), '-out', f('cert.csr')],
    ['x509', '-req', '-in', f('cert.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca-key.pem'), '-CAcreateserial', '-days', '1', '-extfile', f('ext.cnf'), '-out', f('cert.pem')],
  ]) execFileSync('openssl', args, { stdio: 'ignore' });
  return f('ca.pem');
}

// nginx in the foreground with its own prefix: TLS on `port` (with the certificate in
// `certs`, else a self-signed one), the upstreams balanced by connections.
async function nginx(port, upstreams, certs) {
  const dir = mkdtempSync(join(tmpdir(), 'sb-nginx-'));
  if (certs) {
    for (const n of ['cert.pem', 'key.pem']) writeFileSync(join(dir, n), readFileSync(join(certs, n)));
  } else {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  }
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
    assert.equal((await relayedSessions(a.base)) + (await relayedSessions(b.base)), 1, 'one session relayed to the home');
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
    const published = await whipPublish(pub.page, `/whip/${room}`, token);
    assert.equal(published.status, 201, JSON.stringify(published));
    assert.match(published.location, new RegExp(`^/whip/${room}/`), 'the WHIP session is on the public name');
    const watch = devToken({ room, roomJoin: true, canSubscribe: true }, 600, 'tls-player');
    const played = await whepPlay(player.page, `/whep/${room}/tls-publisher`, watch);
    assert.equal(played.status, 201, JSON.stringify(played));
    assert.match(played.location, new RegExp(`^/whep/${room}/`), 'the WHEP session is on the public name');
    const decoded = () => inboundCounts(player.page, 'whepPc');
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

// Node to node over TLS: each node is reached by the others only through its own TLS
// front (nginx with a certificate of a private CA, which the nodes trust through
// SSL_CERT_FILE), its cluster_url https://…. A participant whose socket reaches the node
// that is not the room's home is relayed there over wss://, and REST asked of that node
// is forwarded over https://.
test('nodes reach each other over TLS (cluster_url https://, a private CA in SSL_CERT_FILE)', { skip: missing.length > 0 && `missing ${missing.join(', ')}` }, async () => {
  const certs = mkdtempSync(join(tmpdir(), 'sb-ca-'));
  const ca = privateCa(certs);
  const redis = await redisServer();
  const [fa, fb] = [await freePort(), await freePort()];
  const env = { SSL_CERT_FILE: ca };
  const a = await startServer(['--redis-url', redis.url, '--node-id', 'a', '--cluster-url', `https://127.0.0.1:${fa}`], env);
  const b = await startServer(['--redis-url', redis.url, '--node-id', 'b', '--cluster-url', `https://127.0.0.1:${fb}`], env);
  const fronts = [await nginx(fa, [a.base.replace('http://', '')], certs), await nginx(fb, [b.base.replace('http://', '')], certs)];
  const room = `tlslinks${Date.now()}`;
  let page;
  try {
    const admin = devToken({ roomCreate: true, roomList: true, roomAdmin: true });
    const created = await fetch(`${a.base}/api/v1/rooms`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: room }) });
    assert.equal(created.status, 201);
    const local = async (n) => (await (await fetch(`${n.base}/api/v1/rooms?scope=local`, { headers: { authorization: `Bearer ${admin}` } })).json()).rooms.map((r) => r.name);
    const [home, other] = (await local(a)).includes(room) ? [a, b] : [b, a];
    assert.ok((await local(home)).includes(room) && !(await local(other)).includes(room), 'one home');
    // A participant joins through the other node: relayed to the home over wss://.
    page = await openParticipant(`${other.base}/`);
    const token = devToken({ room, roomJoin: true, canPublish: true, canSubscribe: true }, 600, 'over-tls');
    const joined = await wsJoin(page.page, `${other.base.replace('http', 'ws')}/ws`, token);
    assert.equal(joined.type, 'joined', JSON.stringify(joined));
    assert.equal(await relayedSessions(other.base), 1, 'the session was relayed by the node it reached');
    // REST through the other node, forwarded to the home over https://: the participant is there.
    const people = await fetch(`${other.base}/api/v1/rooms/${room}/participants`, { headers: { authorization: `Bearer ${admin}` } });
    assert.equal(people.status, 200);
    assert.deepEqual((await people.json()).participants.map((p) => p.identity), ['over-tls']);
  } finally {
    await page?.close();
    for (const f of fronts) f.stop();
    a.stop();
    b.stop();
    redis.stop();
    rmSync(certs, { recursive: true, force: true });
  }
});
