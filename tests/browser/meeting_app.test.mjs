// The meeting app as a newcomer meets it, in Chromium: the pre-join screen (preview,
// device pickers, microphone level, join link), a token for another room pasted in,
// four people in the grid with quality marks, the participant list with mute states,
// the speaker view (through the keyboard shortcuts), a 360 px phone width, labels, focus
// order and contrast. It saves screenshots of each screen: to $SB_SCREENSHOTS when set
// (`npm run screenshots` writes docs/images/, which the README shows), else to a
// temporary directory. The screen share's screenshot is screen_share.test.mjs's. (A share
// started in this four-person call could leave Ada with every video paused: her
// bandwidth estimate collapsed to ≈ 80 kbit/s on loopback and did not recover — a server
// issue recorded in issue 17's note, not hidden here: screen_share.test.mjs is where the
// share is tested.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, openParticipant, waitFor, waitForTileVideo, devToken, sleep } from './lib.mjs';

const shots = process.env.SB_SCREENSHOTS || mkdtempSync(join(tmpdir(), 'sb-shots-'));
mkdirSync(shots, { recursive: true });
const shoot = (page, name) => page.screenshot({ path: join(shots, `${name}.png`) });

// WCAG contrast of every visible text element against the colour behind it.
const lowContrast = (page) => page.evaluate(() => {
  const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const behind = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const bad = [];
  for (const el of document.querySelectorAll('button, label, summary, #status, #join-link, .hint, h1, h2, .label, #people-list li, .level')) {
    if (!el.getClientRects().length || !el.textContent.trim()) continue;
    const [a, b] = [lum(rgb(getComputedStyle(el).color).slice(0, 3)), lum(behind(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) bad.push(`${el.id || el.className || el.tagName} ${ratio.toFixed(2)}`);
  }
  return bad;
});

// Controls (inputs, selects, buttons) without an accessible name.
const unlabelled = (page) => page.evaluate(() => [...document.querySelectorAll('input, select, button')]
  .filter((el) => el.getClientRects().length && !(el.labels?.length || el.getAttribute('aria-label') || el.textContent.trim()))
  .map((el) => el.id || el.outerHTML.slice(0, 60)));

const featuredWidth = (page) => page.evaluate(() => {
  const f = document.querySelector('#grid .tile.featured');
  const rest = [...document.querySelectorAll('#grid .tile:not(.featured)')].map((t) => t.getBoundingClientRect().width);
  return f ? { featured: f.getBoundingClientRect().width, others: Math.max(0, ...rest), label: f.querySelector('.label').textContent } : null;
});

test('pre-join, grid, participants, speaker view, phone width', async () => {
  const server = await startServer();
  const room = `meet${Date.now()}`;
  const others = [];
  // Everyone at 640×360, 15 fps (quality=low): four encoders and decoders on two cores
  // otherwise starve the machine, and a subscriber's bandwidth estimate collapses.
  const light = { args: ['--use-fake-device-for-media-stream=fps=15'] };
  const ada = await openParticipant(`${server.base}/?room=${room}&quality=low`, light);
  const page = ada.page;
  try {
    // Pre-join: the camera preview plays, devices are listed, the microphone level moves
    // (Chromium's fake microphone beeps), and the join link names the room.
    await waitFor(() => page.evaluate(() => document.querySelector('#preview').videoWidth > 0), { what: 'the preview playing' });
    const pickers = await page.evaluate(() => ({ cams: document.querySelector('#camera-select').options.length, mics: document.querySelector('#mic-select').options.length }));
    assert.ok(pickers.cams >= 1 && pickers.mics >= 1, JSON.stringify(pickers));
    await waitFor(() => page.evaluate(() => document.querySelector('#mic-level').value > 0.1), { what: 'the level meter moving', timeout: 10000, interval: 50 });
    assert.equal(await page.textContent('#join-link'), `${server.base}/?room=${room}`);
    assert.deepEqual(await unlabelled(page), [], 'every control has a name');
    assert.deepEqual(await lowContrast(page), [], 'text contrast at least 4.5:1');
    // Focus order: room, name, camera, microphone, … join.
    await page.focus('#room');
    const order = [];
    for (let i = 0; i < 6; i++) { await page.keyboard.press('Tab'); order.push(await page.evaluate(() => document.activeElement.id || document.activeElement.tagName)); }
    assert.deepEqual(order.slice(0, 6), ['name', 'camera-select', 'mic-select', 'SUMMARY', 'join', 'copy-link'], `focus order ${order}`);
    await page.fill('#name', 'Ada');
    await shoot(page, 'prejoin');

    // A token for another room: a clear message, no join, and the form still works.
    await page.click('details.token summary');
    await page.fill('#token', devToken({ room: 'elsewhere', roomJoin: true, canPublish: true, canSubscribe: true }, 600, 'ada'));
    await page.click('#join');
    await waitFor(async () => /elsewhere/.test(await page.textContent('#join-error')), { what: 'the wrong-room message', timeout: 5000 });
    assert.match(await page.textContent('#join-error'), new RegExp(`for room “elsewhere”, not “${room}”`));
    assert.equal(await page.isVisible('#join-form'), true);
    await page.fill('#token', '');
    await page.click('#join');
    await waitFor(() => page.evaluate(() => window.sb.joined), { what: 'Ada joined' });
    assert.equal(await page.isVisible('#prejoin'), false, 'the pre-join screen leaves');

    // Four people: the grid.
    for (const name of ['Ben', 'Chloe', 'Dev']) others.push(await openParticipant(`${server.base}/?room=${room}&name=${name}&autojoin=1&quality=low`, light));
    try {
      for (const name of ['Ben', 'Chloe', 'Dev']) await waitForTileVideo(page, name, 60000);
    } catch (e) {
      console.log('tiles:', JSON.stringify(await page.evaluate(() => [...document.querySelectorAll('#grid .tile')].map((t) => [t.querySelector('.label').textContent, t.style.width, t.querySelector('video').videoWidth, t.querySelector('video').srcObject?.getTracks().length]))), 'errors:', JSON.stringify(await page.evaluate(() => window.sb.errors)), 'stats:', JSON.stringify(await page.evaluate(() => window.sb.client.lastStats)));
      throw e;
    }
    // Every remote video carries a connection-quality mark, with a spoken label.
    await waitFor(() => page.evaluate(() => [...document.querySelectorAll('#grid .tile')].every((t) =>
      ['excellent', 'good', 'poor', 'lost'].includes(t.dataset.quality) && /^connection /.test(t.querySelector('.quality').getAttribute('aria-label') || ''))), { what: 'quality marks on every tile', timeout: 10000 });
    await sleep(1500);
    await shoot(page, 'grid');

    // The participant list (p), with Ben's microphone off.
    await others[0].page.click('#mic');
    await page.keyboard.press('p');
    await waitFor(() => page.evaluate(() => {
      const rows = [...document.querySelectorAll('#people-list li')];
      return rows.length === 4 && rows.some((r) => r.textContent.startsWith('Ben') && r.querySelector('.audio_muted'));
    }), { what: 'four people, Ben muted', timeout: 10000 });
    assert.match(await page.textContent('#people-list'), /Ada \(you\)/);
    assert.deepEqual(await lowContrast(page), [], 'text contrast at least 4.5:1 in the call');
    await page.keyboard.press('p');

    // Speaker view (v): one tile large, the others in a strip.
    await page.keyboard.press('v');
    const sv = await featuredWidth(page);
    assert.ok(sv && sv.featured > 2 * sv.others, `speaker view ${JSON.stringify(sv)}`);
    await sleep(1000);
    await shoot(page, 'speaker-view');
    await page.keyboard.press('v');

    // A 360 px phone: nothing wider than the screen, every control reachable.
    await page.setViewportSize({ width: 360, height: 740 });
    await sleep(500);
    const phone = await page.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      controls: [...document.querySelectorAll('#controls button')].map((b) => b.getBoundingClientRect().right),
      tiles: [...document.querySelectorAll('#grid .tile')].map((t) => t.getBoundingClientRect().right),
    }));
    assert.ok(phone.scroll <= 360, `page ${phone.scroll} px wide`);
    assert.ok([...phone.controls, ...phone.tiles].every((r) => r <= 360), JSON.stringify(phone));
    await shoot(page, 'phone');
  } finally {
    await ada.close();
    for (const o of others) await o.close();
    server.stop();
  }
});
