// The app's own layout picks the layer: two windows, 400 × 300 and 1920 × 1080, in one
// room with a 720p simulcast publisher and no size parameter. The grid fills each
// window, the SDK reports each tile's size, and the server sends the small window a
// layer at most 640 px wide and the large one the 1280 px layer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openParticipant, waitFor, inboundWidth as width } from './lib.mjs';

test("each window's natural layout selects its layer", async () => {
  const server = await startServer();
  const room = `win${Date.now()}`;
  const pub = await openParticipant(`${server.base}/?room=${room}&name=cam&autojoin=1`);
  const small = await openParticipant(`${server.base}/?room=${room}&name=phone&autojoin=1&quality=low`, { viewport: { width: 400, height: 300 } });
  const large = await openParticipant(`${server.base}/?room=${room}&name=desk&autojoin=1&quality=low`, { viewport: { width: 1920, height: 1080 } });
  try {
    const tileWidth = (p, name) => p.page.evaluate((name) => {
      const t = [...document.querySelectorAll('#grid .tile')].find((x) => x.querySelector('.label').textContent === name);
      return t ? Math.round(t.getBoundingClientRect().width) : 0;
    }, name);
    await waitFor(async () => (await width(large.page)) >= 1280, { what: 'the 1280 px layer in the large window', timeout: 60000, interval: 500 });
    const seen = (p) => p.page.evaluate(() => ({
      tiles: [...document.querySelectorAll('#grid .tile')].map((t) => { const r = t.getBoundingClientRect(); return [t.querySelector('.label').textContent, Math.round(r.width), Math.round(r.top)]; }),
      status: document.querySelector('#status').textContent,
      notices: document.querySelector('#notices').textContent,
    }));
    try {
      await waitFor(async () => { const w = await width(small.page); return w > 0 && w <= 640; }, { what: 'a layer ≤ 640 px in the small window', timeout: 45000 });
    } catch (e) {
      console.log('small window:', JSON.stringify(await seen(small)), 'layer', await width(small.page));
      throw e;
    }
    // It stays there (the small window's tiles are small, not just late).
    const [ws, wl] = [await tileWidth(small, 'cam'), await tileWidth(large, 'cam')];
    console.log(`tiles: small window ${ws} px, large window ${wl} px; layers ${await width(small.page)} / ${await width(large.page)} px`);
    // Two remote tiles side by side in the large window (the camera and the phone).
    assert.ok(ws > 0 && ws <= 400 && wl > 640, `tile widths ${ws} / ${wl}`);
    assert.ok((await width(small.page)) <= 640);
    // During the call the join form is gone and the tiles are on screen.
    for (const p of [small, large]) {
      assert.equal(await p.page.evaluate(() => document.querySelector('#join-form').getClientRects().length), 0, 'join form hidden');
      assert.ok(await p.page.evaluate(() => [...document.querySelectorAll('#grid .tile')].every((t) => t.getBoundingClientRect().bottom <= innerHeight)), 'tiles on screen');
    }
  } finally {
    for (const p of [pub, small, large]) await p.close();
    server.stop();
  }
});
