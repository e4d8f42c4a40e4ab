// A page that uses nothing but fetch and RTCPeerConnection publishes through WHIP; a
// participant who joined through the web app sees and hears it; a third page plays it
// through WHEP; DELETE ends it. Once with VP8 and once with H.264 + Opus, as OBS sends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openParticipant, waitFor, sleep, devToken, whipPublish, whepPlay, inboundCounts } from './lib.mjs';

for (const codec of ['VP8', 'H264']) test(`WHIP publisher (${codec} + Opus) from a plain page is seen in the web app and played through WHEP`, async () => {
  const server = await startServer();
  const room = `whip${codec}${Date.now()}`;
  const token = devToken({ room, roomJoin: true, canPublish: true, canSubscribe: false }, 600, 'whip-publisher');
  const pub = await openParticipant(`${server.base}/`);
  const viewer = await openParticipant(`${server.base}/?room=${room}&name=viewer&autojoin=1&quality=low`);
  try {
    const { location, status } = await whipPublish(pub.page, `/whip/${room}`, token, codec);
    assert.equal(status, 201);
    assert.match(location, new RegExp(`^/whip/${room}/`));
    // The viewer's page shows the WHIP publisher's tile, playing video.
    await waitFor(() => viewer.page.evaluate(() => {
      const v = document.querySelector('#grid .tile video');
      return v && v.videoWidth > 0;
    }), { what: 'WHIP video in the web app', timeout: 45000 });
    const frames = () => viewer.page.evaluate(async () => {
      let f = 0, a = 0;
      for (const s of (await window.sb.client.subPc.getStats()).values()) {
        if (s.type === 'inbound-rtp' && s.kind === 'video') f += s.framesDecoded || 0;
        if (s.type === 'inbound-rtp' && s.kind === 'audio') a += s.packetsReceived || 0;
      }
      return { f, a };
    });
    const s1 = await frames();
    await sleep(2000);
    const s2 = await frames();
    assert.ok(s2.f > s1.f + 10, `frames decoded rise: ${JSON.stringify([s1, s2])}`);
    assert.ok(s2.a > s1.a + 50, 'audio arrives');
    // WHEP: a third plain page plays the WHIP publisher by identity.
    const player = await openParticipant(`${server.base}/`);
    try {
      const watch = devToken({ room, roomJoin: true, canSubscribe: true }, 600, 'whep-player');
      // The WHIP publisher, by identity (the web-app viewer publishes too, so the
      // active speaker could be either; speaker following is simulated in sfu-core).
      const played = await whepPlay(player.page, `/whep/${room}/whip-publisher`, watch);
      assert.equal(played.status, 201, JSON.stringify(played));
      const decoded = async () => (await inboundCounts(player.page, 'whepPc')).f;
      await waitFor(async () => (await decoded()) > 0, { what: 'WHEP frames decoded', timeout: 30000 });
      const played_codec = await player.page.evaluate(async () => {
        const stats = await window.whepPc.getStats();
        for (const s of stats.values()) if (s.type === 'inbound-rtp' && s.kind === 'video') return stats.get(s.codecId)?.mimeType;
      });
      assert.equal(played_codec, `video/${codec}`, 'WHEP plays the codec the publisher sent');
      const f1 = await decoded();
      await sleep(2000);
      assert.ok((await decoded()) > f1 + 10, 'WHEP frames keep decoding');
      assert.equal((await fetch(`${server.base}${played.location}`, { method: 'DELETE' })).status, 200);
    } finally {
      await player.close();
    }
    // DELETE ends the session: the tile goes away.
    const del = await fetch(`${server.base}${location}`, { method: 'DELETE' });
    assert.equal(del.status, 200);
    await waitFor(() => viewer.page.evaluate(() => document.querySelectorAll('#grid .tile').length === 0), { what: 'WHIP tile removed', timeout: 10000 });
  } finally {
    await pub.close();
    await viewer.close();
    server.stop();
  }
});
