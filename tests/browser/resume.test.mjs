// Resume: a participant whose signaling socket drops (the media path intact) keeps its
// place — the other participant sees it "reconnecting", never leaving — and the client
// resumes by itself with its token: the same participant id, no renegotiation, no gap in
// the media the other one decodes. When resume is refused (past the grace period), the
// client joins anew and republishes without user action.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openParticipant, inbound, waitFor, waitForTileVideo, sleep, devToken } from './lib.mjs';

// Record what `page`'s client hears about others (left, reconnecting flags).
const watch = (page) => page.evaluate(() => {
  window.seen = [];
  const c = window.sb.client;
  c.addEventListener('participant_left', (e) => window.seen.push(['left', e.detail.participant]));
  c.addEventListener('participant_joined', (e) => window.seen.push(['joined', e.detail.id]));
  c.addEventListener('participant_updated', (e) => window.seen.push(['updated', e.detail.id, !!e.detail.reconnecting]));
});

async function members(server, room) {
  const r = await fetch(`${server.base}/api/v1/rooms/${room}/participants`, { headers: { authorization: `Bearer ${devToken({ room, roomAdmin: true })}` } });
  return (await r.json()).participants.map((p) => ({ id: p.id, name: p.name, reconnecting: !!p.reconnecting }));
}

test('a dropped signaling socket is resumed: the same participant, no media gap', async () => {
  const server = await startServer(['--resume-grace', '20']);
  const room = `resume${Date.now()}`;
  const a = await openParticipant(`${server.base}/?room=${room}&name=ann&autojoin=1&quality=low`);
  const b = await openParticipant(`${server.base}/?room=${room}&name=bob&autojoin=1&quality=low`);
  try {
    await waitForTileVideo(b.page, 'ann');
    await waitForTileVideo(a.page, 'bob');
    await watch(b.page);
    const id = await a.page.evaluate(() => window.sb.client.me.id);
    const offers = await a.page.evaluate(() => { window.offers = 0; window.sb.client.addEventListener('track', () => window.offers++); return 0; });
    // Bob samples the frames he decodes every 100 ms, through the drop and the resume.
    await b.page.evaluate(() => {
      window.frames = [];
      window.sampler = setInterval(async () => {
        for (const s of (await window.sb.client.subPc.getStats()).values()) {
          if (s.type === 'inbound-rtp' && s.kind === 'video') window.frames.push([performance.now(), s.framesDecoded]);
        }
      }, 100);
    });
    const before = await inbound(b.page);
    // Drop ann's signaling socket only (her peer connections stay up), and hold the
    // reconnect for 1.5 s so that bob sees the gap.
    await a.page.evaluate(() => { window.sb.client.reconnectDelayMs = 1500; window.sb.client.ws.close(3000, 'test: network drop'); });
    await waitFor(() => b.page.evaluate(() => window.seen.some(([k, , r]) => k === 'updated' && r)), { what: 'bob sees ann reconnecting', timeout: 5000 });
    const during = await members(server, room);
    assert.ok(during.some((m) => m.id === id && m.reconnecting), JSON.stringify(during));
    await waitFor(() => a.page.evaluate(() => window.sb.client.connectionState === 'connected'), { what: 'ann resumed', timeout: 10000 });
    assert.equal(await a.page.evaluate(() => window.sb.client.me.id), id, 'the same participant');
    await waitFor(() => b.page.evaluate(() => window.seen.some(([k, , r]) => k === 'updated' && !r)), { what: 'bob sees ann back', timeout: 5000 });
    await sleep(1000);
    const later = await inbound(b.page);
    const seen = await b.page.evaluate(() => window.seen);
    // The longest time bob's decoded-frame count stood still, over the drop and after.
    const stall = await b.page.evaluate(() => {
      clearInterval(window.sampler);
      let longest = 0, since = window.frames[0][0];
      for (let i = 1; i < window.frames.length; i++) {
        if (window.frames[i][1] > window.frames[i - 1][1]) since = window.frames[i][0];
        longest = Math.max(longest, window.frames[i][0] - since);
      }
      return { longest: Math.round(longest), samples: window.frames.length };
    });
    console.log('bob saw', JSON.stringify(seen), '; video frames', before.video.framesDecoded, '->', later.video.framesDecoded, '; longest stall', JSON.stringify(stall));
    assert.ok(!seen.some(([k]) => k === 'left' || k === 'joined'), 'bob never saw ann leave or join again');
    // Media never stopped: frames kept being decoded through the drop and the resume.
    assert.ok(later.video.framesDecoded > before.video.framesDecoded + 20, 'frames decoded over the drop');
    assert.ok(stall.samples > 20 && stall.longest < 700, `no media gap: ${JSON.stringify(stall)}`);
    assert.equal(await a.page.evaluate(() => window.offers), 0, 'no renegotiation: no new tracks');
    assert.deepEqual((await members(server, room)).map((m) => m.reconnecting), [false, false]);
  } finally {
    await a.close();
    await b.close();
    server.stop();
  }
});

test('a resume refused past the grace period falls back to a full rejoin', async () => {
  const short = await startServer(['--resume-grace', '1']);
  const room2 = `rejoin${Date.now()}`;
  // A drop past the grace period: the server removes cat, her resume is refused, and
  // the client joins anew, republishing: dan sees a new cat with video.
  const c = await openParticipant(`${short.base}/?room=${room2}&name=cat&autojoin=1&quality=low`);
  const d = await openParticipant(`${short.base}/?room=${room2}&name=dan&autojoin=1&quality=low`);
  try {
    await waitForTileVideo(d.page, 'cat');
    const old = await c.page.evaluate(() => window.sb.client.me.id);
    await c.page.evaluate(() => {
      window.states = [];
      window.sb.client.addEventListener('connection', (e) => window.states.push(e.detail.state));
      window.sb.client.reconnectDelayMs = 3500;
      window.sb.client.ws.close(3000, 'test: long drop');
    });
    await waitFor(() => c.page.evaluate(() => window.states.includes('rejoining')), { what: 'cat rejoins after the refusal', timeout: 15000 });
    await waitFor(() => c.page.evaluate(() => window.sb.client.connectionState === 'connected'), { what: 'cat rejoined', timeout: 20000 });
    const fresh = await c.page.evaluate(() => window.sb.client.me.id);
    assert.notEqual(fresh, old, 'a new participant');
    const diag = async () => JSON.stringify({
      cat: await c.page.evaluate(() => ({ states: window.states, errors: window.sb.errors, pub: window.sb.client.pubPc?.connectionState, status: document.querySelector('#status').textContent })),
      log: short.log().split('\n').filter((l) => /left|joined|ICE|timeout|removed|gone|Gone|resum|park/i.test(l)).slice(-25),
      dan: await d.page.evaluate(() => ({ tiles: [...document.querySelectorAll('#grid .tile')].map((t) => [t.dataset.participant, t.querySelector('.label').textContent, t.querySelector('video').videoWidth]), errors: window.sb.errors })),
    });
    await waitForTileVideo(d.page, 'cat', 20000).catch(async (e) => { throw new Error(`${e.message}: ${await diag()}`); });
    console.log('cat rejoined as', fresh, 'after', JSON.stringify(await c.page.evaluate(() => window.states)));
    assert.deepEqual((await members(short, room2)).map((m) => m.name).sort(), ['cat', 'dan']);
  } finally {
    await c.close();
    await d.close();
    short.stop();
  }
});
