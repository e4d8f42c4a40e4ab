// Two headless Chromium instances join one room through the web app, see and hear each
// other through the SFU, and one leaves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openParticipant, inbound, waitFor, waitForTileVideo, sleep, devToken } from './lib.mjs';

test('two browsers see and hear each other; a leaver disappears', async () => {
  const server = await startServer();
  const room = `r${Date.now()}`;
  const a = await openParticipant(`${server.base}/?room=${room}&name=alice&autojoin=1&quality=low`);
  const b = await openParticipant(`${server.base}/?room=${room}&name=bob&autojoin=1&quality=low`);
  try {
    // The other's tile appears with its name and plays video.
    for (const [p, other] of [[a, 'bob'], [b, 'alice']]) await waitForTileVideo(p.page, other);
    for (const p of [a, b]) {
      const s1 = await inbound(p.page);
      await sleep(2000);
      const s2 = await inbound(p.page);
      console.log('inbound', JSON.stringify(s1), '->', JSON.stringify(s2));
      assert.ok(s2.video.framesDecoded > s1.video.framesDecoded + 10, 'video frames decoded keep rising');
      assert.ok(s2.video.frameWidth > 0, 'video has a size');
      assert.ok(s2.audio.packetsReceived > s1.audio.packetsReceived + 50, 'audio packets keep arriving');
      assert.ok(s2.audio.totalSamplesReceived > s1.audio.totalSamplesReceived, 'audio is decoded');
      assert.deepEqual(await p.page.evaluate(() => window.sb.errors), []);
      // quality=low publishes one 640×360 encoding, not three simulcast layers.
      const out = await p.page.evaluate(async () => [...(await window.sb.client.pubPc.getStats()).values()]
        .filter((s) => s.type === 'outbound-rtp' && s.kind === 'video').map((s) => ({ rid: s.rid, w: s.frameWidth })));
      assert.equal(out.length, 1, `one video encoding: ${JSON.stringify(out)}`);
      assert.ok(!out[0].rid && out[0].w <= 640, JSON.stringify(out));
    }
    // Alice mutes her microphone: Bob's page shows it on her tile; then unmutes.
    await a.page.click('#mic');
    await waitFor(() => b.page.evaluate(() => document.querySelector('#grid .tile')?.classList.contains('mic-off')), { what: 'mute shown', timeout: 5000 });
    await a.page.click('#mic');
    await waitFor(() => b.page.evaluate(() => !document.querySelector('#grid .tile')?.classList.contains('mic-off')), { what: 'unmute shown', timeout: 5000 });
    // An administrator mutes Alice through the REST API: her page shows it and her
    // microphone button turns off; Bob sees her muted.
    const admin = devToken({ room, roomAdmin: true });
    const identity = await a.page.evaluate(() => window.sb.client.me.identity);
    const r = await fetch(`${server.base}/api/v1/rooms/${room}/participants/${identity}/mute`, {
      method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'audio', muted: true }),
    });
    assert.equal(r.status, 200, await r.text());
    await waitFor(() => a.page.evaluate(() => document.querySelector('#mic').classList.contains('off')
      && document.querySelector('#notices').textContent.includes('administrator muted you')), { what: 'admin mute shown', timeout: 5000 });
    await waitFor(() => b.page.evaluate(() => document.querySelector('#grid .tile')?.classList.contains('mic-off')), { what: 'admin mute seen by bob', timeout: 5000 });
    // Bob leaves: his tile disappears from Alice's page.
    await b.page.click('#leave');
    await waitFor(() => a.page.evaluate(() => document.querySelectorAll('#grid .tile').length === 0), { what: "bob's tile removed", timeout: 10000 });
    // Alice, alone now, stays connected: the renegotiation that removed bob's tracks kept
    // her subscriber transport (Chromium closes it when an offer stops the BUNDLE-tag
    // m-line; the server removed her within 50 ms for a "lost connection" until that
    // m-line was made inactive instead).
    await sleep(3000);
    const left = await (await fetch(`${server.base}/api/v1/rooms/${room}/participants`, { headers: { authorization: `Bearer ${admin}` } })).json();
    assert.deepEqual(left.participants.map((p) => p.name), ['alice'], JSON.stringify(left));
    assert.deepEqual(await a.page.evaluate(() => window.sb.errors), []);
    assert.equal(await a.page.evaluate(() => window.sb.client.subPc.connectionState), 'connected');
  } finally {
    await a.close();
    await b.close();
    server.stop();
  }
});
