// A long network cut: the viewer's namespace drops all UDP (its media) for 20 s, longer
// than the server's ICE timeout, while its signaling (TCP) stays up. The server removes
// it as a lost connection (close 4012), the web client joins again by itself — again
// and again while the cut lasts — and once the link is restored it is back in the room,
// decoding the publisher's video, without a page reload. The time from restoration to
// frames flowing is printed (docs/benchmarks.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startServer, openParticipant, waitFor, waitForTileVideo, canShapeLinks, shapedNet, inbound, devToken } from './lib.mjs';

const shaping = canShapeLinks();

test('after a 20 s cut of its media the client rejoins by itself and decodes again', { skip: !shaping && 'needs root and iproute2/nftables to create namespaces' }, async () => {
  const net = shapedNet(String((process.pid + 7) % 10000));
  const nft = (...a) => execFileSync('ip', ['netns', 'exec', net.view, 'nft', ...a], { stdio: ['ignore', 'ignore', 'pipe'] });
  const server = await startServer([], {}, { netns: net.srv, addr: net.addr });
  const origin = server.base;
  const room = `blip${Date.now()}`;
  let pub, viewer;
  try {
    pub = await openParticipant(`${origin}/?room=${room}&name=cam&autojoin=1&quality=low`, { secureOrigin: origin });
    viewer = await openParticipant(`${origin}/?room=${room}&name=viewer&autojoin=1&quality=low`, { netns: net.view, secureOrigin: origin });
    await waitForTileVideo(viewer.page, 'cam');
    const first = await viewer.page.evaluate(() => {
      window.states = [];
      window.sb.client.addEventListener('connection', (e) => window.states.push(e.detail.state));
      return window.sb.client.me.id;
    });
    // Cut: every UDP datagram in or out of the viewer's namespace is dropped.
    nft('add', 'table', 'inet', 'sbcut');
    nft('add', 'chain', 'inet', 'sbcut', 'in', '{ type filter hook input priority 0 ; }');
    nft('add', 'chain', 'inet', 'sbcut', 'out', '{ type filter hook output priority 0 ; }');
    nft('add', 'rule', 'inet', 'sbcut', 'in', 'meta', 'l4proto', 'udp', 'drop');
    nft('add', 'rule', 'inet', 'sbcut', 'out', 'meta', 'l4proto', 'udp', 'drop');
    const cut = Date.now();
    await waitFor(() => viewer.page.evaluate(() => window.states.includes('rejoining')), { what: 'the server drops the viewer and it rejoins', timeout: 40000, interval: 500 });
    const removedAfter = Date.now() - cut;
    await new Promise((r) => setTimeout(r, Math.max(0, 20000 - (Date.now() - cut))));
    nft('delete', 'table', 'inet', 'sbcut');
    const restored = Date.now();
    // Back: a new participant (the old one was removed), decoding the publisher again.
    await waitFor(async () => (await inbound(viewer.page)).video.framesDecoded > 5, { what: 'frames decoded after the restoration', timeout: 30000, interval: 200 });
    const back = Date.now() - restored;
    await waitForTileVideo(viewer.page, 'cam');
    const now = await viewer.page.evaluate(() => ({ id: window.sb.client.me.id, states: window.states, errors: window.sb.errors.map((e) => e.code) }));
    console.log(`cut: removed after ${removedAfter} ms; restored → frames again in ${back} ms;`, JSON.stringify(now));
    assert.notEqual(now.id, first, 'a new participant after the removal');
    const r = await fetch(`${origin}/api/v1/rooms/${room}/participants`, { headers: { authorization: `Bearer ${devToken({ room, roomAdmin: true })}` } });
    assert.deepEqual((await r.json()).participants.map((p) => p.name).sort(), ['cam', 'viewer']);
    await waitForTileVideo(pub.page, 'viewer');
  } finally {
    try { nft('delete', 'table', 'inet', 'sbcut'); } catch {}
    await pub?.close();
    await viewer?.close();
    server.stop();
    net.cleanup();
  }
});
