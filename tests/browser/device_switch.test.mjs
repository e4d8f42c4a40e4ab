// A device switch during a call, through the app's device panel (opened with its `d`
// shortcut): the new camera and microphone replace the old ones on the same sender
// (replaceTrack). Nobody renegotiates: no publish_offer from the switcher, no
// subscribe_offer to the other participant, the same peer connections, and the other
// side keeps decoding. Chromium gets three fake cameras for this; the test switches to
// the third (fake_device_1 is a 16-bit depth camera, which WebRTC cannot encode: a
// sender given it sends no frames, in Chromium alone too).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openParticipant, waitFor, waitForTileVideo, tileVideo, sleep } from './lib.mjs';

// From now on, count the offers either way and keep the connections to compare.
const watch = (page) => page.evaluate(() => {
  const c = window.sb.client;
  window.watched = { publishOffers: 0, subscribeOffers: 0, pcs: [c.pubPc, c.subPc] };
  const onMessage = c.onMessage.bind(c);
  c.onMessage = (m) => { if (m.type === 'subscribe_offer') window.watched.subscribeOffers++; onMessage(m); };
  const send = c.send.bind(c);
  c.send = (m) => { if (m.type === 'publish_offer') window.watched.publishOffers++; send(m); };
});
const watched = (page) => page.evaluate(() => {
  const c = window.sb.client;
  const w = window.watched;
  return { publishOffers: w.publishOffers, subscribeOffers: w.subscribeOffers, samePcs: w.pcs[0] === c.pubPc && w.pcs[1] === c.subPc, state: c.pubPc.connectionState };
});
// The device each of the switcher's senders sends from.
const sending = (page) => page.evaluate(() => {
  const out = {};
  for (const s of window.sb.client.pubPc.getSenders()) if (s.track) out[s.track.kind] = s.track.getSettings().deviceId;
  return out;
});

test('switching camera and microphone mid-call renegotiates nothing', async () => {
  const server = await startServer();
  const room = `dev${Date.now()}`;
  const a = await openParticipant(`${server.base}/?room=${room}&name=a&autojoin=1&quality=low`, { args: ['--use-fake-device-for-media-stream=device-count=3,fps=30'] });
  const b = await openParticipant(`${server.base}/?room=${room}&name=b&autojoin=1&quality=low`);
  try {
    await waitForTileVideo(b.page, 'a');
    await waitForTileVideo(a.page, 'b');
    await sleep(1000);
    await watch(a.page);
    await watch(b.page);
    const before = await sending(a.page);

    await a.page.keyboard.press('d');
    assert.equal(await a.page.isVisible('#devices'), true, 'the d key opens the device panel');
    const option = (sel, pick) => a.page.evaluate(([sel, pick]) => [...document.querySelector(sel).options].find((o) => !o.selected && (!pick || o.textContent === pick))?.value, [sel, pick]);
    const camera = await option('#call-camera', 'fake_device_2');
    const mic = await option('#call-mic');
    assert.ok(camera && mic, 'a second camera and microphone to pick');
    await a.page.selectOption('#call-camera', camera);
    await waitFor(async () => (await sending(a.page)).video === camera, { what: 'the new camera sent', timeout: 10000 });
    await a.page.selectOption('#call-mic', mic);
    await waitFor(async () => (await sending(a.page)).audio === mic, { what: 'the new microphone sent', timeout: 10000 });
    assert.notEqual(before.video, camera);

    // b keeps decoding a's video, now from the other camera.
    const f0 = (await tileVideo(b.page, '#grid .tile')).framesDecoded;
    await sleep(3000);
    const f1 = (await tileVideo(b.page, '#grid .tile')).framesDecoded;
    const [wa, wb] = [await watched(a.page), await watched(b.page)];
    console.log(`after the switch: b decoded ${f1 - f0} frames in 3 s; a ${JSON.stringify(wa)}; b ${JSON.stringify(wb)}`);
    assert.ok(f1 - f0 >= 15, 'b keeps decoding');
    assert.equal(wa.publishOffers, 0, 'a sent no new offer');
    assert.equal(wb.subscribeOffers, 0, 'b got no new subscribe offer');
    assert.ok(wa.samePcs && wb.samePcs, 'the same peer connections');
    assert.equal(wa.state, 'connected');
  } finally {
    await a.close();
    await b.close();
    server.stop();
  }
});
