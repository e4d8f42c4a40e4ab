// ICE-TCP: a browser whose network drops every UDP datagram (nftables in its own
// namespace) still joins, publishes and decodes, over the server's passive TCP candidate
// (RFC 6544); its connections' selected candidate pairs are TCP. A browser with UDP uses
// UDP (TCP is offered at a lower priority). Join times (page open → first decoded frame)
// of both are printed for docs/benchmarks.md.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startServer, openParticipant, waitFor, waitForTileVideo, canShapeLinks, shapedNet, inbound, metricsText } from './lib.mjs';

const shaping = canShapeLinks();

// The protocol of a connection's selected pair (its local candidate).
const selectedProtocol = (page, which) => page.evaluate(async (which) => {
  const pc = window.sb.client?.[which];
  if (!pc) return null;
  const stats = [...(await pc.getStats()).values()];
  const transport = stats.find((s) => s.type === 'transport' && s.selectedCandidatePairId);
  const pair = stats.find((s) => s.id === transport?.selectedCandidatePairId)
    ?? stats.find((s) => s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded');
  if (!pair) return null;
  const local = stats.find((s) => s.id === pair.localCandidateId);
  const remote = stats.find((s) => s.id === pair.remoteCandidateId);
  return { local: local?.protocol, remote: remote?.protocol, remotePort: remote?.port };
}, which);

// Page open → the publisher's video decoding, in ms.
async function joinTime(url, opts, name) {
  const t0 = Date.now();
  const p = await openParticipant(url, opts);
  await waitFor(async () => (await inbound(p.page)).video.framesDecoded > 0, { what: `${name} decodes`, timeout: 30000, interval: 100 });
  return { p, ms: Date.now() - t0 };
}

test('a browser without UDP joins and decodes over ICE-TCP', { skip: !shaping && 'needs root and iproute2/nftables to create namespaces' }, async () => {
  const net = shapedNet(String((process.pid + 11) % 10000));
  const nft = (...a) => execFileSync('ip', ['netns', 'exec', net.view, 'nft', ...a], { stdio: ['ignore', 'ignore', 'pipe'] });
  const server = await startServer([], {}, { netns: net.srv, addr: net.addr });
  const origin = server.base;
  const room = `tcp${Date.now()}`;
  const pages = [];
  try {
    const pub = await openParticipant(`${origin}/?room=${room}&name=cam&autojoin=1&quality=low`, { secureOrigin: origin });
    pages.push(pub);
    await waitFor(() => pub.page.evaluate(() => window.sb.client?.pubPc?.connectionState === 'connected'), { what: 'publisher connected' });
    // A viewer with UDP: its pairs are UDP.
    const udp = await joinTime(`${origin}/?room=${room}&name=udp&autojoin=1&quality=low`, { netns: net.view, secureOrigin: origin }, 'udp viewer');
    pages.push(udp.p);
    assert.equal((await selectedProtocol(udp.p.page, 'subPc'))?.local, 'udp');
    await udp.p.close();
    pages.pop();
    // No UDP at all in the viewer's namespace from here on.
    nft('add', 'table', 'inet', 'sbnoudp');
    nft('add', 'chain', 'inet', 'sbnoudp', 'in', '{ type filter hook input priority 0 ; }');
    nft('add', 'chain', 'inet', 'sbnoudp', 'out', '{ type filter hook output priority 0 ; }');
    nft('add', 'rule', 'inet', 'sbnoudp', 'in', 'meta', 'l4proto', 'udp', 'drop');
    nft('add', 'rule', 'inet', 'sbnoudp', 'out', 'meta', 'l4proto', 'udp', 'drop');
    const tcp = await joinTime(`${origin}/?room=${room}&name=tcp&autojoin=1&quality=low`, { netns: net.view, secureOrigin: origin }, 'tcp viewer');
    pages.push(tcp.p);
    await waitForTileVideo(tcp.p.page, 'cam');
    const sub = await selectedProtocol(tcp.p.page, 'subPc');
    assert.equal(sub?.local, 'tcp', `subscriber pair ${JSON.stringify(sub)}`);
    assert.equal(sub?.remote, 'tcp');
    // Its camera reaches the publisher over TCP too.
    await waitFor(() => selectedProtocol(tcp.p.page, 'pubPc').then((s) => s?.local === 'tcp'), { what: 'publisher pair over TCP', timeout: 20000 });
    await waitForTileVideo(pub.page, 'tcp');
    const dropped = execFileSync('ip', ['netns', 'exec', net.view, 'nft', 'list', 'table', 'inet', 'sbnoudp']).toString();
    assert.match(dropped, /udp drop/);
    // The node's metrics count the frames (published every second).
    const tcpFrames = async () => {
      const metrics = await metricsText(origin);
      return [...metrics.matchAll(/^switchboard_ice_tcp_frames_received_total\{[^}]*\} (\d+)/gm)].reduce((a, m) => a + Number(m[1]), 0);
    };
    const frames = await waitFor(async () => { const n = await tcpFrames(); return n > 200 && n; }, { what: 'TCP frames counted', timeout: 10000 });
    console.log(`join → first frame: udp ${udp.ms} ms, ice-tcp ${tcp.ms} ms; TCP frames in ${frames}`);
  } finally {
    try { nft('delete', 'table', 'inet', 'sbnoudp'); } catch {}
    for (const p of pages) await p.close();
    server.stop();
    net.cleanup();
  }
});
