// A SIP phone (Debian's baresip, a 440 Hz sine as its microphone) and a Chromium
// participant in one room: the browser hears the phone's tone (WebAudio analysis of the
// phone's track), the phone hears the browser (Chromium's fake microphone beeps, recorded
// by baresip), and keys typed on the phone (RFC 4733) reach the browser as data messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AccessToken } from 'livekit-server-sdk';
import { startServer, openParticipant, openLiveKitTonePage, waitFor, sleep, TEST_SECRET } from './lib.mjs';
import { hasBaresip, phone, blocks, recording } from './baresip.mjs';

// Type `keys` on a baresip phone through its ctrl_tcp module (netstring-framed JSON).
async function typeKeys(port, keys) {
  const sock = connect(port, '127.0.0.1');
  await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  for (const k of keys) {
    const b = Buffer.from(JSON.stringify({ command: 'sndcode', params: k, token: k }));
    sock.write(`${b.length}:${b},`);
    await sleep(300);
  }
  sock.end();
}

test('a SIP phone and a browser in one room hear each other; the phone\'s keys reach the browser', { skip: !hasBaresip && 'baresip is not installed' }, async () => {
  const sipPort = 5260;
  const server = await startServer(['--sip-listen', `127.0.0.1:${sipPort}`, '--sip-rtp-ports', '25100-25199']);
  const room = `sip${Date.now()}`;
  const browser = await openParticipant(`${server.base}/?room=${room}&name=web&autojoin=1&quality=low`);
  const dir = mkdtempSync(join(tmpdir(), 'sb-phone-'));
  let ph;
  try {
    await waitFor(() => browser.page.evaluate(() => !!window.sb.client?.me), { what: 'browser joined', timeout: 20000 });
    ph = phone(dir, { port: 5270, rtp: '10100-10119', tone: 440, dial: `sip:${room}@127.0.0.1:${sipPort}`, seconds: 25 });
    // The phone's tile appears, named with the telephone sign.
    await waitFor(() => browser.page.evaluate(() => [...document.querySelectorAll('#grid .tile .label')].some((l) => l.textContent.startsWith('☎'))),
      { what: "the phone's tile", timeout: 20000 });
    // It is a phone (participant kind `sip`): an icon, not a video.
    const look = await browser.page.evaluate(() => {
      const tile = [...document.querySelectorAll('#grid .tile')].find((t) => t.querySelector('.label').textContent.startsWith('☎'));
      return { phone: tile.classList.contains('phone'), icon: getComputedStyle(tile, '::before').content,
        video: getComputedStyle(tile.querySelector('video')).visibility };
    });
    assert.deepEqual(look, { phone: true, icon: '"☎"', video: 'hidden' }, JSON.stringify(look));
    // The browser hears 440 Hz: the strongest frequency of the phone's track.
    const peak = await waitFor(() => browser.page.evaluate(async () => {
      const tile = [...document.querySelectorAll('#grid .tile')].find((t) => t.querySelector('.label').textContent.startsWith('☎'));
      const stream = tile?.querySelector('video')?.srcObject;
      const track = stream?.getAudioTracks()[0];
      if (!track) return null;
      window.phoneCtx ||= new AudioContext();
      const ctx = window.phoneCtx;
      await ctx.resume();
      const an = ctx.createAnalyser();
      an.fftSize = 8192;
      ctx.createMediaStreamSource(new MediaStream([track])).connect(an);
      await new Promise((r) => setTimeout(r, 1000));
      const f = new Float32Array(an.frequencyBinCount);
      an.getFloatFrequencyData(f);
      let best = 0;
      for (let i = 1; i < f.length; i++) if (f[i] > f[best]) best = i;
      const hz = (best * ctx.sampleRate) / an.fftSize;
      return f[best] > -60 && Math.abs(hz - 440) < 15 ? { hz, db: f[best] } : null;
    }), { what: "the phone's 440 Hz in the browser", timeout: 20000, interval: 500 });
    console.log('browser hears the phone at', JSON.stringify(peak));
    // Keys typed on the phone arrive in the browser as data messages on topic sip.dtmf.
    await browser.page.evaluate(() => {
      window.dtmf = [];
      window.sb.client.addEventListener('data', (e) => window.dtmf.push(e.detail));
    });
    await typeKeys(6270, '42#');
    const got = await waitFor(() => browser.page.evaluate(() => (window.dtmf.length >= 3 ? window.dtmf : null)),
      { what: 'the phone\'s keys as data messages', timeout: 10000 });
    console.log('data messages from the phone:', JSON.stringify(got.map((m) => [m.topic, m.payload])));
    assert.deepEqual(got.map((m) => JSON.parse(m.payload).digit), ['4', '2', '#']);
    assert.ok(got.every((m) => m.topic === 'sip.dtmf'));
    // The phone hears the browser: baresip's recording of what it received has sound.
    await sleep(6000);
  } finally {
    ph?.proc.kill('SIGINT');
    await ph?.done;
    await browser.close();
    server.stop();
  }
  const rec = recording(dir);
  assert.ok(rec, 'the phone recorded what it heard');
  const all = blocks(rec);
  const loud = all.filter((b) => b.rms > 300);
  const own = Math.max(0, ...loud.map((b) => b.own));
  console.log(`phone recording: ${all.length} blocks, ${loud.length} with sound (RMS > 300); most of its own 440 Hz in one: ${own.toFixed(3)}`);
  assert.ok(loud.length >= 5, `the phone hears the browser's microphone: ${loud.length} loud blocks of ${all.length}`);
  // The 440 Hz share of a block of what the phone heard: 0.009-0.05 across runs (where the
  // small share comes from is not pinned down: the browser's fake microphone is the only
  // other sound); a phone that heard its own tone back would have it dominate its blocks.
  assert.ok(own < 0.15, `the phone does not hear itself: 440 Hz share up to ${own}`);
});

// A LiveKit participant (livekit-client in Chromium, its fake microphone an 880 Hz tone)
// and a SIP phone in one room: the SDK's page hears the phone's 440 Hz (WebAudio analysis
// of the phone's track), and the phone hears the 880 Hz (Goertzel on baresip's recording).
test('a SIP phone and a LiveKit participant hear each other', { skip: !hasBaresip && 'baresip is not installed' }, async () => {
  const sipPort = 5261;
  const server = await startServer(['--sip-listen', `127.0.0.1:${sipPort}`, '--sip-rtp-ports', '25200-25299']);
  const roomName = `siplk${Date.now()}`;
  const at = new AccessToken('devkey', TEST_SECRET, { identity: 'lk', ttl: '10m' });
  at.addGrant({ roomJoin: true, room: roomName, canPublish: true, canSubscribe: true });
  const dir = mkdtempSync(join(tmpdir(), 'sb-phone-lk-'));
  const page = await openLiveKitTonePage(server.base, 880);
  let ph;
  try {
    await page.page.evaluate(async ({ url, jwt }) => {
      const { Room, RoomEvent } = window.LivekitClient;
      const room = new Room({ audioCaptureDefaults: { noiseSuppression: false, echoCancellation: false, autoGainControl: false } });
      window.heard = [];
      room.on(RoomEvent.TrackSubscribed, (track) => {
        if (track.kind !== 'audio') return;
        document.body.appendChild(track.attach());
        window.sbLoudest(track.mediaStreamTrack, window.heard);
      });
      await room.connect(url, jwt);
      await room.localParticipant.setMicrophoneEnabled(true);
    }, { url: server.base.replace('http', 'ws'), jwt: await at.toJwt() });
    ph = phone(dir, { port: 5271, rtp: '10120-10139', tone: 440, dial: `sip:${roomName}@127.0.0.1:${sipPort}`, seconds: 25 });
    const peak = await waitFor(() => page.page.evaluate(() => window.heard.find((h) => h.db > -60 && Math.abs(h.hz - 440) < 15) || null),
      { what: "the phone's 440 Hz at the LiveKit participant", timeout: 20000, interval: 500 });
    console.log('the LiveKit participant hears the phone at', JSON.stringify(peak));
    await sleep(6000);
  } finally {
    ph?.proc.kill('SIGINT');
    await ph?.done;
    await page.close();
    server.stop();
  }
  const rec = recording(dir);
  assert.ok(rec, 'the phone recorded what it heard');
  const all = blocks(rec, 880);
  const tone = all.filter((b) => b.rms > 300 && b.own > 0.5);
  console.log(`phone recording: ${all.length} blocks, ${tone.length} loud and mostly 880 Hz`);
  assert.ok(tone.length >= 10, `the phone hears the LiveKit participant's 880 Hz: ${tone.length} blocks of ${all.length}`);
});
