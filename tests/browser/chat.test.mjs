// Chat in the web app: messages reach every other participant in order, with the
// sender's name; markup in names and messages is shown as text; a message that is too
// long, or one too many in a second, is refused with a message in the page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openParticipant, waitFor } from './lib.mjs';

const say = (p, text) => p.page.evaluate((text) => {
  document.querySelector('#chat-input').value = text;
  document.querySelector('#chat-form').requestSubmit();
}, text);
const lines = (p) => p.page.evaluate(() => [...document.querySelectorAll('#messages li')]
  .map((li) => `${li.querySelector('.who').textContent}: ${li.querySelector('.text').textContent}`));

test('chat: in order, with names, as text, within limits', async () => {
  const server = await startServer();
  const room = `chat${Date.now()}`;
  const evil = '<b>mallory</b>';
  const names = ['alice', 'bob', evil];
  const ps = [];
  try {
    for (const n of names) {
      ps.push(await openParticipant(`${server.base}/?room=${room}&name=${encodeURIComponent(n)}&autojoin=1&quality=low`));
    }
    for (const p of ps) await waitFor(() => p.page.evaluate(() => document.querySelectorAll('#grid .tile').length === 2), { what: 'everyone in the room' });
    const [a, b, m] = ps;
    // An unread badge on a closed chat.
    await say(a, 'one');
    await waitFor(() => b.page.evaluate(() => document.querySelector('#unread').textContent === '1'), { what: 'unread badge' });
    await b.page.click('#chat-toggle');
    assert.equal(await b.page.evaluate(() => document.querySelector('#unread').hidden), true, 'opening the chat clears the badge');
    // Within the rate: two more from Alice, then Bob, then markup from Mallory.
    await a.page.waitForTimeout(1100);
    await say(a, 'two');
    await say(a, 'three');
    await say(b, 'from bob');
    const script = '<img src=x onerror="window.pwned=1">';
    await say(m, script);
    const want = ['alice: one', 'alice: two', 'alice: three', 'bob: from bob', `${evil}: ${script}`];
    const others = { 0: want.filter((l) => !l.startsWith('alice')), 1: want.filter((l) => !l.startsWith('bob')), 2: want.filter((l) => !l.startsWith(evil)) };
    for (const [i, p] of ps.entries()) {
      await waitFor(async () => (await lines(p)).filter((l) => !l.startsWith('you:')).length === others[i].length, { what: `messages at ${names[i]}` });
      assert.deepEqual((await lines(p)).filter((l) => !l.startsWith('you:')), others[i], `order and names at ${names[i]}`);
      assert.equal(await p.page.evaluate(() => document.querySelector('#messages img, #messages b')), null, 'no markup rendered');
      assert.equal(await p.page.evaluate(() => window.pwned), undefined, 'no script ran');
    }
    // Too long, and too many in a second: refused in the page, nothing sent.
    const before = (await lines(b)).length;
    await say(a, 'x'.repeat(1001));
    assert.match(await a.page.textContent('#chat-error'), /at most 1000 characters/);
    await a.page.waitForTimeout(1100);
    for (const t of ['r1', 'r2', 'r3', 'r4']) await say(a, t);
    assert.match(await a.page.textContent('#chat-error'), /At most 3 messages a second/);
    await waitFor(async () => (await lines(b)).length === before + 3, { what: 'three of the four' });
    await b.page.waitForTimeout(500);
    assert.deepEqual((await lines(b)).slice(before), ['alice: r1', 'alice: r2', 'alice: r3']);
  } finally {
    for (const p of ps) await p.close();
    server.stop();
  }
});
