// Two nodes of a cluster on one redis-server (loopback): two Chromium participants open
// the web app on different nodes for one room; the node that is not the room's home
// sends its client to the home (`moved`), and they see each other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { startServer, openParticipant, waitForTileVideo } from './lib.mjs';

const haveRedis = (() => { try { execFileSync('redis-server', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; } })();

async function redisServer() {
  const port = 46000 + (process.pid % 1000);
  const proc = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const net = await import('node:net');
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((r) => { const s = net.connect(port, '127.0.0.1', () => { s.end(); r(true); }); s.on('error', () => r(false)); });
    if (ok) return { url: `redis://127.0.0.1:${port}/`, stop: () => proc.kill('SIGKILL') };
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('redis-server did not start');
}

test('participants entering through two nodes of a cluster see each other', { skip: !haveRedis && 'redis-server is not installed' }, async () => {
  const redis = await redisServer();
  const a = await startServer(['--redis-url', redis.url, '--node-id', 'a']);
  const b = await startServer(['--redis-url', redis.url, '--node-id', 'b']);
  const room = `cluster${Date.now()}`;
  let pa, pb;
  try {
    pa = await openParticipant(`${a.base}/?room=${room}&name=ann&autojoin=1&quality=low`);
    pb = await openParticipant(`${b.base}/?room=${room}&name=bob&autojoin=1&quality=low`);
    await waitForTileVideo(pa.page, 'bob');
    await waitForTileVideo(pb.page, 'ann');
    // One of them was sent to the other node: both sockets end at the room's home.
    const urls = await Promise.all([pa, pb].map((p) => p.page.evaluate(() => window.sb.client.wsUrl)));
    assert.equal(urls[0], urls[1], `both on the home: ${urls}`);
    assert.ok([a.base, b.base].some((base) => urls[0] === `${base.replace('http', 'ws')}/ws`));
  } finally {
    await pa?.close();
    await pb?.close();
    a.stop();
    b.stop();
    redis.stop();
  }
});
