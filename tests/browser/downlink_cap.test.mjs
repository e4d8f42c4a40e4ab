// A subscriber whose downlink is capped gets a smaller simulcast layer and keeps decoding;
// when the cap is lifted it climbs back to the top layer. The server and the viewer each
// sit in a network namespace this test creates; the viewer's link is shaped with tbf on
// the server side of its veth pair (this kernel has no netem). Also checks dynacast: with
// the viewer's tile small, the publisher stops encoding the top layer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openParticipant, waitFor, inbound, canShapeLinks, shapedNet, sleep } from './lib.mjs';

const shaping = canShapeLinks();

// The publisher's outbound video encodings: rid → { active, frameWidth, framesEncoded }.
const outbound = (page) => page.evaluate(async () => {
  const pc = window.sb.client?.pubPc;
  const out = {};
  if (!pc) return out;
  for (const s of (await pc.getStats()).values()) {
    if (s.type === 'outbound-rtp' && s.kind === 'video' && s.rid) out[s.rid] = { active: s.active, frameWidth: s.frameWidth || 0, framesEncoded: s.framesEncoded || 0 };
  }
  return out;
});

test('a capped downlink lowers the layer, video keeps decoding, and it climbs back', { skip: !shaping && 'needs root and iproute2 (tc) to create namespaces' }, async () => {
  const net = shapedNet();
  const server = await startServer([], {}, { netns: net.srv, addr: net.addr });
  const origin = server.base;
  const room = `cap${Date.now()}`;
  let pub, viewer;
  try {
    pub = await openParticipant(`${origin}/?room=${room}&name=cam&autojoin=1`, { secureOrigin: origin });
    viewer = await openParticipant(`${origin}/?room=${room}&name=viewer&autojoin=1&quality=low&tile=1280`, { netns: net.view, secureOrigin: origin });
    const width = async () => { const s = await inbound(viewer.page); if (process.env.SB_DEBUG) console.log(JSON.stringify(s)); return s.video.frameWidth; };
    await waitFor(async () => (await width()) >= 1280, { what: 'the 1280 px layer on an open link', timeout: 60000, interval: 500 });

    // Cap the viewer's downlink: 1.7 Mbps of f no longer fits, q (150 kbps) does.
    const capped = Date.now();
    net.capViewer('450kbit');
    // Sustained (three samples in a row): a single smaller frame can be a transient
    // switch while the estimate is still falling.
    let smaller = 0;
    await waitFor(async () => { const w = await width(); smaller = w > 0 && w < 1280 ? smaller + 1 : 0; return smaller >= 3; }, { what: 'a smaller layer under the cap', timeout: 30000, interval: 250 });
    const down = Date.now() - capped;
    // Video keeps decoding under the cap.
    const f0 = (await inbound(viewer.page)).video.framesDecoded;
    await sleep(4000);
    const under = await inbound(viewer.page);
    console.log(`capped at 450 kbit/s: ${under.video.frameWidth} px after ${down} ms; ${under.video.framesDecoded - f0} frames decoded in 4 s`);
    assert.ok(under.video.framesDecoded - f0 >= 12, 'video keeps decoding under the cap (at a lower frame rate too)');
    assert.ok(under.video.frameWidth < 1280);

    // Lift the cap: back to the top layer.
    const lifted = Date.now();
    net.uncapViewer();
    await waitFor(async () => (await width()) >= 1280, { what: 'the 1280 px layer after the cap is lifted', timeout: 60000, interval: 500 });
    console.log(`back to 1280 px ${Date.now() - lifted} ms after the cap was lifted`);

    // Dynacast: shrink the viewer's tile to 320 px: the publisher stops encoding f.
    await viewer.page.evaluate(() => { for (const t of document.querySelectorAll('#grid .tile')) t.style.width = '320px'; });
    await waitFor(async () => (await outbound(pub.page)).f?.active === false, { what: 'the publisher told to stop its f layer', timeout: 30000, interval: 500 });
    const e0 = (await outbound(pub.page)).f.framesEncoded;
    await sleep(2000);
    const o = await outbound(pub.page);
    console.log(`dynacast: publisher layers ${JSON.stringify(o)}`);
    assert.ok(o.f.framesEncoded - e0 <= 2, 'f is no longer encoded');
    assert.equal(o.q.active, true);
    // The tile grows again: f comes back and the viewer gets it.
    await viewer.page.evaluate(() => { for (const t of document.querySelectorAll('#grid .tile')) t.style.width = '1280px'; });
    await waitFor(async () => (await outbound(pub.page)).f?.active === true, { what: 'f switched back on', timeout: 30000, interval: 500 });
    await waitFor(async () => (await width()) >= 1280, { what: 'the 1280 px layer after dynacast resumed it', timeout: 60000, interval: 500 });
  } finally {
    await pub?.close();
    await viewer?.close();
    server.stop();
    await sleep(300);
    net.cleanup();
  }
});

test('10 % random loss on the subscriber link: video keeps decoding', { skip: !shaping && 'needs root, iproute2 and nftables' }, async () => {
  const net = shapedNet(`${process.pid % 10000}l`);
  const server = await startServer([], {}, { netns: net.srv, addr: net.addr });
  const origin = server.base;
  const room = `loss${Date.now()}`;
  let pub, viewer;
  try {
    pub = await openParticipant(`${origin}/?room=${room}&name=cam&autojoin=1`, { secureOrigin: origin });
    viewer = await openParticipant(`${origin}/?room=${room}&name=viewer&autojoin=1&quality=low&tile=640`, { netns: net.view, secureOrigin: origin });
    await waitFor(async () => (await inbound(viewer.page)).video.framesDecoded > 30, { what: 'video before the loss', timeout: 60000, interval: 500 });
    net.lossViewer(10);
    await sleep(3000);
    const stats = async () => {
      const v = (await inbound(viewer.page)).video;
      return { frames: v.framesDecoded, lost: v.packetsLost, received: v.packetsReceived, nacks: v.nackCount, freezes: v.freezeCount };
    };
    const a = await stats();
    await sleep(6000);
    const b = await stats();
    const fps = (b.frames - a.frames) / 6;
    console.log(`10 % loss: ${fps.toFixed(1)} frames/s decoded; ${b.nacks - a.nacks} NACKs sent, ${b.lost - a.lost} packets still lost after repair of ${b.received - a.received} received, ${b.freezes - a.freezes} freezes`);
    assert.ok(fps >= 5, `video keeps decoding under 10 % loss (${fps.toFixed(1)} fps)`);
    assert.ok(b.nacks > a.nacks, 'losses are repaired with NACKs');
  } finally {
    await pub?.close();
    await viewer?.close();
    server.stop();
    await sleep(300);
    net.cleanup();
  }
});
