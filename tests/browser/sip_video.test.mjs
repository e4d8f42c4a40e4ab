// A SIP video endpoint (Debian's baresip with its VP8 codec and synthetic camera,
// `fakevideo`, 640 × 360 at 15 fps) and Chromium participants in one room: the browser
// decodes the endpoint's video at its resolution; the endpoint receives the room's active
// speaker — never itself — and decodes it; when the speaker changes, its picture follows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, openParticipant, waitFor, sleep, tileVideo, metricsText, toneFile, devToken } from './lib.mjs';
import { hasVideoPhone, videoPhone, phone, blocks, recording } from './baresip.mjs';

const phoneTile = '#grid .tile.phone';

// A server with the SIP gateway on `sipPort`, its RTP on `rtp` (a range), and `more` flags.
const gateway = (sipPort, rtp, more = []) => startServer(['--sip-listen', `127.0.0.1:${sipPort}`, '--sip-rtp-ports', rtp, ...more]);
// Until the web app on `p` has joined its room.
const joined = (p) => waitFor(() => p.page.evaluate(() => !!window.sb.client?.me), { what: 'browser joined', timeout: 20000 });
// Until the endpoint's log shows its first decoded picture of the room: its size.
const endpointDecodes = (ph) => waitFor(() => ph.log().match(/video: receiving with resolution (\d+ x \d+)/)?.[1],
  { what: 'the endpoint decoding the speaker view', timeout: 30000, interval: 500 });

// The server's speaker-view switches so far: how many, how many within 500 ms, their sum.
async function viewSwitches(base) {
  const m = await metricsText(base);
  const get = (re) => Number((m.match(re) || [0, 0])[1]);
  return {
    count: get(/^switchboard_speaker_view_switch_seconds_count (\d+)/m),
    within: get(/^switchboard_speaker_view_switch_seconds_bucket\{le="0.5"\} (\d+)/m),
    sum: Number((m.match(/^switchboard_speaker_view_switch_seconds_sum ([\d.e-]+)/m) || [0, 0])[1]),
  };
}

// Decode errors in a baresip log after its first decoded picture (none may follow a switch).
function errorsAfterFirstPicture(log) {
  const first = log.indexOf('video: receiving with resolution');
  return first < 0 ? null : (log.slice(first).match(/vp8: decode error|corrupt/gi) || []).length;
}

// A video endpoint dials a browser's room: the browser decodes the endpoint's video at its
// resolution, the endpoint decodes the room's speaker view, nothing of the endpoint's is
// dropped (with `srtp`, keyed by SDES: every packet authenticates both ways).
async function seeEachOther({ sipPort, rtpRange, port, rtp, srtp = false }) {
  const server = await gateway(sipPort, rtpRange);
  const room = `sipv${Date.now()}`;
  const browser = await openParticipant(`${server.base}/?room=${room}&name=web&autojoin=1`);
  const dir = mkdtempSync(join(tmpdir(), 'sb-vtc-'));
  let ph;
  try {
    await joined(browser);
    ph = videoPhone(dir, { port, rtp, dial: `sip:${room}@127.0.0.1:${sipPort}`, seconds: 30, srtp });
    // The browser decodes the endpoint's video at the endpoint's resolution.
    const seen = await waitFor(async () => {
      const v = await tileVideo(browser.page, phoneTile);
      return v.width === 640 && v.framesDecoded > 30 ? v : null;
    }, { what: "the endpoint's video decoded in the browser", timeout: 30000, interval: 500 });
    console.log("the browser decodes the endpoint's video:", JSON.stringify(seen));
    const shown = await browser.page.evaluate((sel) => getComputedStyle(document.querySelector(`${sel} video`)).visibility, phoneTile);
    assert.equal(shown, 'visible', "the endpoint's tile shows its picture, not the phone icon");
    // The endpoint receives the room's speaker view (the browser's camera) and decodes it.
    const decoded = await endpointDecodes(ph);
    console.log('the endpoint decodes the room at', decoded);
    assert.ok(Number(decoded.split(' x ')[0]) >= 160, `a real picture: ${decoded}`);
    await sleep(3000);
    const metrics = await metricsText(server.base);
    const dropped = metrics.split('\n').filter((l) => l.startsWith('switchboard_sip_video_dropped_total')
      || l.startsWith('switchboard_sip_rtp_dropped_total{reason="srtp"}'));
    console.log('dropped at the gateway:', dropped.length ? dropped.join('; ') : 'none');
    // RTP and RTCP ports come in pairs: nothing of the endpoint's lands on a wrong socket.
    // Keyed, baresip also sends one plain RTCP APP packet ("PING"/"PONG", 16 bytes) that
    // is rightly dropped; any of its media failing to authenticate would be more.
    const srtpDrops = dropped.filter((l) => l.startsWith('switchboard_sip_video_dropped_total{reason="srtp"}'));
    const unkeyed = Number(srtpDrops[0]?.split(' ')[1] ?? 0);
    assert.deepEqual(dropped.filter((l) => !srtpDrops.includes(l)), [], 'no packet of the endpoint dropped');
    assert.ok(srtp ? unkeyed <= 2 : unkeyed === 0, `packets failing SRTP: ${unkeyed}`);
  } finally {
    ph?.proc.kill('SIGINT');
    await ph?.done;
    await browser.close();
    server.stop();
  }
  const log = ph.log();
  assert.doesNotMatch(log, /vp8: decode error|corrupt/i, 'no decode errors at the endpoint');
  return log;
}

test('a SIP video endpoint and a browser in one room see each other', { skip: !hasVideoPhone && 'baresip with vp8.so and fakevideo.so is not installed' }, async () => {
  await seeEachOther({ sipPort: 5262, rtpRange: '25300-25399', port: 5280, rtp: '10200-10239' });
});

// baresip with mediaenc=srtp-mand offers RTP/SAVP for audio and video and hangs up on a
// plain answer: pictures both ways mean our SRTP and SRTCP are the endpoint's.
test('a SIP video endpoint that insists on SRTP (SDES) and a browser see each other', { skip: !hasVideoPhone && 'baresip with vp8.so and fakevideo.so is not installed' }, async () => {
  const log = await seeEachOther({ sipPort: 5267, rtpRange: '25800-25899', port: 5340, rtp: '10440-10479', srtp: true });
  assert.match(log, /mediaenc 'srtp-mand'/, 'the endpoint keyed its media');
});

// Two browsers speaking in turn (each unmuted while the other is muted): the endpoint's
// one video stream follows each speaker change; the server measures every switch
// (speaker change → the new speaker's first packet to the endpoint) within 500 ms.
test("a SIP video endpoint's picture follows the speaker", { skip: !hasVideoPhone && 'baresip with vp8.so and fakevideo.so is not installed' }, async () => {
  const sipPort = 5263;
  const server = await gateway(sipPort, '25400-25499');
  const room = `sipsw${Date.now()}`;
  // Each browser's microphone a steady tone (Chromium's default beeps are too short to
  // make a speaker).
  const tone = (hz) => ({ args: [`--use-file-for-fake-audio-capture=${toneFile(hz)}`] });
  const a = await openParticipant(`${server.base}/?room=${room}&name=a&autojoin=1`, tone(500));
  const b = await openParticipant(`${server.base}/?room=${room}&name=b&autojoin=1&quality=low`, tone(700));
  const dir = mkdtempSync(join(tmpdir(), 'sb-vtc-sw-'));
  const switches = () => viewSwitches(server.base);
  const mic = (p, on) => p.page.evaluate(async (on) => {
    const btn = document.querySelector('#mic');
    if ((btn.getAttribute('aria-pressed') === 'true') === on) btn.click();
  }, on);
  let ph;
  try {
    for (const p of [a, b]) await joined(p);
    await mic(b, false);
    // The endpoint is silent: the browsers take turns as the speaker.
    ph = videoPhone(dir, { port: 5290, rtp: '10240-10279', dial: `sip:${room}@127.0.0.1:${sipPort}`, seconds: 45, tone: null });
    await endpointDecodes(ph);
    const start = await switches();
    // b speaks, then a again, then b: three speaker changes.
    for (const [speaker, quiet] of [[b, a], [a, b], [b, a]]) {
      const before = (await switches()).count;
      await mic(quiet, false);
      await mic(speaker, true);
      await waitFor(async () => (await switches()).count > before, { what: 'the speaker view switching', timeout: 15000, interval: 250 });
      await sleep(2000);
    }
    const end = await switches();
    console.log('speaker view switches:', JSON.stringify({ start, end }),
      `mean ${((1000 * (end.sum - start.sum)) / Math.max(1, end.count - start.count)).toFixed(0)} ms`);
    assert.ok(end.count - start.count >= 3, `three switches: ${JSON.stringify({ start, end })}`);
    assert.equal(end.within, end.count, 'every switch within 500 ms of the speaker change');
  } finally {
    ph?.proc.kill('SIGINT');
    await ph?.done;
    await a.close();
    await b.close();
    server.stop();
  }
  assert.equal(errorsAfterFirstPicture(ph.log()), 0, 'no decode errors across the switches');
});

// A browser shares its screen: the endpoint (no BFCP content channel) sees the share in
// place of the speaker while it is on, and the speaker's camera after — two switches of
// its one stream, the speaker unchanged.
test('a screen share reaches a SIP video endpoint in place of the speaker', { skip: !hasVideoPhone && 'baresip with vp8.so and fakevideo.so is not installed' }, async () => {
  const sipPort = 5264;
  const server = await gateway(sipPort, '25500-25599');
  const room = `sipshare${Date.now()}`;
  const a = await openParticipant(`${server.base}/?room=${room}&name=a&autojoin=1`);
  const dir = mkdtempSync(join(tmpdir(), 'sb-vtc-share-'));
  let ph;
  try {
    await joined(a);
    ph = videoPhone(dir, { port: 5300, rtp: '10280-10319', dial: `sip:${room}@127.0.0.1:${sipPort}`, seconds: 40, tone: null });
    await endpointDecodes(ph);
    const start = await viewSwitches(server.base);
    await a.page.click('#share');
    await waitFor(async () => (await viewSwitches(server.base)).count > start.count, { what: 'the view switching to the share', timeout: 15000, interval: 250 });
    await sleep(3000);
    const shared = await viewSwitches(server.base);
    await a.page.click('#share');
    await waitFor(async () => (await viewSwitches(server.base)).count > shared.count, { what: 'the view back on the camera', timeout: 15000, interval: 250 });
    await sleep(2000);
    const end = await viewSwitches(server.base);
    console.log('switches for the share:', JSON.stringify({ start, shared, end }));
    assert.equal(end.count - start.count, 2, 'to the share and back');
    assert.equal(end.within, end.count, 'each within 500 ms');
  } finally {
    ph?.proc.kill('SIGINT');
    await ph?.done;
    await a.close();
    server.stop();
  }
  assert.equal(errorsAfterFirstPicture(ph.log()), 0, 'no decode errors across the switches');
});

// The room calls a video system (REST, POST /api/v1/sip/calls): our offer carries video,
// the endpoint answers it, and both pictures flow as for a call in.
test('a call out to a SIP video endpoint carries video both ways', { skip: !hasVideoPhone && 'baresip with vp8.so and fakevideo.so is not installed' }, async () => {
  const sipPort = 5265;
  const server = await gateway(sipPort, '25600-25699', ['--sip-outbound-hosts', '127.0.0.1:5310']);
  const room = `sipout${Date.now()}`;
  const browser = await openParticipant(`${server.base}/?room=${room}&name=web&autojoin=1`);
  const dir = mkdtempSync(join(tmpdir(), 'sb-vtc-out-'));
  let ph;
  try {
    await joined(browser);
    ph = videoPhone(dir, { port: 5310, rtp: '10320-10359', seconds: 30 });
    await waitFor(() => /baresip is ready/.test(ph.log()), { what: 'the endpoint ready', timeout: 10000 });
    const r = await fetch(`${server.base}/api/v1/sip/calls`, {
      method: 'POST',
      headers: { authorization: `Bearer ${devToken({ room, sipCall: true })}`, 'content-type': 'application/json' },
      body: JSON.stringify({ room, to: 'sip:vtc@127.0.0.1:5310', wait_until_answered: true }),
    });
    const call = await r.json();
    assert.equal(r.status, 201, JSON.stringify(call));
    const seen = await waitFor(async () => {
      const v = await tileVideo(browser.page, phoneTile);
      return v.width === 640 && v.framesDecoded > 30 ? v : null;
    }, { what: "the called endpoint's video in the browser", timeout: 30000, interval: 500 });
    console.log("the browser decodes the called endpoint's video:", JSON.stringify(seen));
    const decoded = await endpointDecodes(ph);
    console.log('the called endpoint decodes the room at', decoded);
  } finally {
    ph?.proc.kill('SIGINT');
    await ph?.done;
    await browser.close();
    server.stop();
  }
});

// An audio-only phone in the same room as a video endpoint keeps working: it hears the
// endpoint (its 440 Hz), and the browser still sees the endpoint's picture.
test('an audio-only phone beside a video endpoint hears it', { skip: !hasVideoPhone && 'baresip with vp8.so and fakevideo.so is not installed' }, async () => {
  const sipPort = 5266;
  const server = await gateway(sipPort, '25700-25799');
  const room = `sipmix${Date.now()}`;
  const browser = await openParticipant(`${server.base}/?room=${room}&name=web&autojoin=1`);
  const vdir = mkdtempSync(join(tmpdir(), 'sb-vtc-mix-'));
  const adir = mkdtempSync(join(tmpdir(), 'sb-phone-mix-'));
  const dial = `sip:${room}@127.0.0.1:${sipPort}`;
  let vtc, ph;
  try {
    await joined(browser);
    vtc = videoPhone(vdir, { port: 5320, rtp: '10360-10399', dial, seconds: 30 });
    ph = phone(adir, { port: 5330, rtp: '10400-10419', tone: 1000, dial, seconds: 25 });
    const seen = await waitFor(async () => {
      const v = await tileVideo(browser.page, `${phoneTile}.has-video`);
      return v.width === 640 && v.framesDecoded > 30 ? v : null;
    }, { what: "the endpoint's picture beside the audio phone", timeout: 30000, interval: 500 });
    console.log("the browser decodes the endpoint's video:", JSON.stringify(seen));
    await sleep(8000);
  } finally {
    ph?.proc.kill('SIGINT');
    await ph?.done;
    vtc?.proc.kill('SIGINT');
    await vtc?.done;
    await browser.close();
    server.stop();
  }
  const rec = recording(adir);
  assert.ok(rec, 'the audio phone recorded what it heard');
  const heard = blocks(rec, 440).filter((b) => b.rms > 300 && b.own > 0.5);
  console.log(`the audio phone: ${heard.length} loud blocks mostly the endpoint's 440 Hz`);
  assert.ok(heard.length >= 10, `the audio phone hears the video endpoint: ${heard.length} blocks`);
});
