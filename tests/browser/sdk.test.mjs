// The SDK's "hello room" example (docs/sdk.md, exactly as printed there) in two Chromium
// pages of one room: each joins, publishes its camera and plays the other's video.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startServer, openParticipant, waitFor } from './lib.mjs';

const doc = readFileSync(new URL('../../docs/sdk.md', import.meta.url), 'utf8');
const example = doc.match(/```js\n([\s\S]*?)```/)[1];

// A page of the server's origin running the example, the SDK resolved by an import map.
const page = (example) => `<!doctype html><meta charset="utf-8"><title>hello room</title>
<script type="importmap">{"imports": {"switchboard-client": "/client.js"}}</script>
<script type="module">${example}</script>`;

test("the SDK's hello-room example joins and receives media", async () => {
  const server = await startServer();
  const room = `hello${Date.now()}`;
  const peers = [];
  try {
    for (let i = 0; i < 2; i++) {
      const p = await openParticipant(`${server.base}/healthz?room=${room}`);
      const logs = [];
      p.page.on('console', (m) => logs.push(m.text()));
      await p.page.setContent(page(example));
      peers.push({ ...p, logs });
    }
    for (const p of peers) {
      await waitFor(() => p.page.evaluate(() => {
        const v = document.querySelector('video');
        return !!v && v.videoWidth > 0 && v.currentTime > 0.5;
      }), { what: 'the other page\'s video playing', timeout: 30000 });
      assert.ok(p.logs.some((l) => l.startsWith('joined as ')), p.logs.join('\n'));
    }
    assert.ok(peers[0].logs.some((l) => / joined$/.test(l)), 'the first page saw the second join');
    const played = await peers[1].page.evaluate(() => [...document.querySelectorAll('video, audio')].map((e) => e.tagName));
    assert.deepEqual(played.sort(), ['AUDIO', 'VIDEO'], 'one element per remote track');
  } finally {
    for (const p of peers) await p.close();
    server.stop();
  }
});
