// Two nodes of a cluster on one redis-server (loopback): two Chromium participants open
// the web app on different nodes for one room; the node that is not the room's home
// relays its client's signaling to the home (the client stays on the node it reached),
// and they see each other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openParticipant, waitForTileVideo, relayedSessions, redisServer, have } from './lib.mjs';

test('participants entering through two nodes of a cluster see each other', { skip: !have('redis-server') && 'redis-server is not installed' }, async () => {
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
    assert.equal((await relayedSessions(a.base)) + (await relayedSessions(b.base)), 1, 'one session relayed to the home');
  } finally {
    await pa?.close();
    await pb?.close();
    a.stop();
    b.stop();
    redis.stop();
  }
});
