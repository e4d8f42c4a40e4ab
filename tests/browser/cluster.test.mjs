// Two nodes of a cluster on one redis-server (loopback): two Chromium participants open
// the web app on different nodes for one room; the node that is not the room's home
// relays its client's signaling to the home (the client stays on the node it reached),
// and they see each other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { startServer, openParticipant, waitForTileVideo, metricsText } from './lib.mjs';

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
    // Neither was sent anywhere: each socket stays on the node it reached, and the node
    // that is not the home relayed one session.
    const urls = await Promise.all([pa, pb].map((p) => p.page.evaluate(() => window.sb.client.wsUrl)));
    assert.deepEqual(urls, [a, b].map((n) => `${n.base.replace('http', 'ws')}/ws`), `each on its own node: ${urls}`);
    const relayed = async (n) => Number((await metricsText(n.base)).match(/^switchboard_cluster_relayed_sessions_total (\d+)/m)?.[1] ?? 0);
    assert.equal((await relayed(a)) + (await relayed(b)), 1, 'one session relayed to the home');
  } finally {
    await pa?.close();
    await pb?.close();
    a.stop();
    b.stop();
    redis.stop();
  }
});
