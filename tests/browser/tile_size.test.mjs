// The tile size picks the simulcast layer: a 320 px tile receives the 320×180 layer of a
// 720p publisher; enlarged to 1280 px it climbs to the 1280×720 layer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openParticipant, waitFor, inboundWidth as width } from './lib.mjs';

test('the tile size selects the simulcast layer', async () => {
  const server = await startServer();
  const room = `tile${Date.now()}`;
  const pub = await openParticipant(`${server.base}/?room=${room}&name=cam&autojoin=1`);
  const viewer = await openParticipant(`${server.base}/?room=${room}&name=viewer&autojoin=1&quality=low&tile=320`);
  try {
    await waitFor(async () => (await width(viewer.page)) === 320, { what: 'the 320 px layer for a 320 px tile', timeout: 45000 });
    const t0 = Date.now();
    await viewer.page.evaluate(() => { for (const t of document.querySelectorAll('#grid .tile')) t.style.width = '1280px'; });
    await waitFor(async () => (await width(viewer.page)) >= 1280, { what: 'the 1280 px layer for a 1280 px tile', timeout: 60000, interval: 500 });
    console.log(`climbed to 1280 px in ${Date.now() - t0} ms`);
    assert.ok(true);
  } finally {
    await pub.close();
    await viewer.close();
    server.stop();
  }
});
