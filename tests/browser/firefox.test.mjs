// Firefox ESR and Chromium in one room through the web app: each decodes the other, and
// Firefox's rid simulcast (which has no temporal layers: it ignores L1T3) is switched by
// the Chromium viewer's tile size, from the smallest layer to the largest.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openParticipant, openFirefox, inbound, waitFor, waitForTileVideo, sleep, inboundWidth as width } from './lib.mjs';

// Firefox's simulcast encodings as it sends them: rid → frame width.
const sent = (page) => page.evaluate(async () => {
  const out = {};
  const pc = window.sb.client?.pubPc;
  if (!pc) return out;
  for (const s of (await pc.getStats()).values()) {
    if (s.type === 'outbound-rtp' && s.kind === 'video' && s.frameWidth) out[s.rid || '-'] = s.frameWidth;
  }
  return out;
});

test('Firefox and Chromium decode each other; Firefox simulcast follows the tile size', async () => {
  const server = await startServer();
  const room = `ff${Date.now()}`;
  const fox = await openFirefox(`${server.base}/?room=${room}&name=fox&autojoin=1`);
  const chrome = await openParticipant(`${server.base}/?room=${room}&name=chrome&autojoin=1&quality=low&tile=320`);
  try {
    for (const [p, other] of [[fox, 'chrome'], [chrome, 'fox']]) await waitForTileVideo(p.page, other);
    for (const [p, who] of [[fox, 'firefox'], [chrome, 'chromium']]) {
      const s1 = await inbound(p.page);
      await sleep(2000);
      const s2 = await inbound(p.page);
      console.log(who, 'inbound', JSON.stringify(s1), '->', JSON.stringify(s2));
      assert.ok(s2.video.framesDecoded > s1.video.framesDecoded + 10, `${who}: video frames decoded keep rising`);
      assert.ok(s2.audio.packetsReceived > s1.audio.packetsReceived + 50, `${who}: audio packets keep arriving`);
      assert.deepEqual(await p.page.evaluate(() => window.sb.errors), [], `${who}: no errors`);
    }
    // Firefox sends rid simulcast; the 320 px tile gets its smallest layer.
    const layers = await waitFor(async () => {
      const l = await sent(fox.page);
      return Object.keys(l).length >= 2 && l;
    }, { what: 'Firefox sending simulcast', timeout: 30000 });
    console.log('firefox sends', JSON.stringify(layers));
    const widths = Object.values(layers);
    const [small, large] = [Math.min(...widths), Math.max(...widths)];
    assert.ok(large > small, JSON.stringify(layers));
    await waitFor(async () => (await width(chrome.page)) === small, { what: `the ${small} px layer for a 320 px tile`, timeout: 30000 });
    // Enlarged to 1280 px, the tile climbs to Firefox's largest layer (once its bandwidth
    // estimate lets Firefox send it).
    const t0 = Date.now();
    await chrome.page.evaluate(() => { for (const t of document.querySelectorAll('#grid .tile')) t.style.width = '1280px'; });
    await waitFor(async () => (await width(chrome.page)) >= large, {
      what: `the ${large} px layer for a 1280 px tile`, timeout: 60000, interval: 500,
    });
    console.log(`climbed to ${large} px in ${Date.now() - t0} ms`);
  } finally {
    await fox.close();
    await chrome.close();
    server.stop();
  }
});
