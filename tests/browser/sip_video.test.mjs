// A SIP video endpoint (Debian's baresip with its VP8 codec and synthetic camera,
// `fakevideo`, 640 × 360 at 15 fps) and Chromium participants in one room: the browser
// decodes the endpoint's video at its resolution; the endpoint receives the room's active
// speaker — never itself — and decodes it; when the speaker changes, its picture follows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, openParticipant, waitFor, sleep, tileVideo, metricsText, have } from './lib.mjs';

const hasVideoPhone = have('baresip') && (() => {
  try { readFileSync('/usr/lib/baresip/modules/fakevideo.so'); readFileSync('/usr/lib/baresip/modules/vp8.so'); return true; } catch { return false; }
})();

// A baresip video endpoint dialing `dial`; its log (stdout) in `dir/log`.
function videoPhone(dir, { port, rtp, dial, seconds }) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config'), [
    'poll_method epoll', `sip_listen 127.0.0.1:${port}`, 'net_interface 127.0.0.1',
    'audio_player alsa,null', 'audio_alert alsa,null', 'audio_source ausine,440',
    'ausrc_srate 48000', 'ausrc_channels 2', 'auplay_srate 48000', 'audio_level no',
    'video_source fakevideo,nil', 'video_display fakevideo,nil', 'video_size 640x360',
    'video_fps 15', 'video_bitrate 500000',
    `rtp_ports ${rtp}`, 'module_path /usr/lib/baresip/modules', 'module g711.so',
    'module ausine.so', 'module alsa.so', 'module vp8.so', 'module fakevideo.so',
    'module_app account.so', 'module_app menu.so', '',
  ].join('\n'));
  writeFileSync(join(dir, 'accounts'), `<sip:vtc@127.0.0.1:${port}>;regint=0;audio_codecs=PCMU;video_codecs=VP8\n`);
  const log = openSync(join(dir, 'log'), 'w');
  const p = spawn('baresip', ['-v', '-f', dir, '-t', String(seconds), '-e', `/dial ${dial}`], { stdio: ['ignore', log, log] });
  return { proc: p, done: new Promise((r) => p.on('exit', r)), log: () => readFileSync(join(dir, 'log'), 'utf8') };
}

const phoneTile = '#grid .tile.phone';

test('a SIP video endpoint and a browser in one room see each other', { skip: !hasVideoPhone && 'baresip with vp8.so and fakevideo.so is not installed' }, async () => {
  const sipPort = 5262;
  const server = await startServer(['--sip-listen', `127.0.0.1:${sipPort}`, '--sip-rtp-ports', '25300-25399']);
  const room = `sipv${Date.now()}`;
  const browser = await openParticipant(`${server.base}/?room=${room}&name=web&autojoin=1`);
  const dir = mkdtempSync(join(tmpdir(), 'sb-vtc-'));
  let ph;
  try {
    await waitFor(() => browser.page.evaluate(() => !!window.sb.client?.me), { what: 'browser joined', timeout: 20000 });
    ph = videoPhone(dir, { port: 5280, rtp: '10200-10239', dial: `sip:${room}@127.0.0.1:${sipPort}`, seconds: 30 });
    // The browser decodes the endpoint's video at the endpoint's resolution.
    const seen = await waitFor(async () => {
      const v = await tileVideo(browser.page, phoneTile);
      return v.width === 640 && v.framesDecoded > 30 ? v : null;
    }, { what: "the endpoint's video decoded in the browser", timeout: 30000, interval: 500 });
    console.log("the browser decodes the endpoint's video:", JSON.stringify(seen));
    const shown = await browser.page.evaluate((sel) => getComputedStyle(document.querySelector(`${sel} video`)).visibility, phoneTile);
    assert.equal(shown, 'visible', "the endpoint's tile shows its picture, not the phone icon");
    // The endpoint receives the room's speaker view (the browser's camera) and decodes it.
    const decoded = await waitFor(() => {
      const m = ph.log().match(/video: receiving with resolution (\d+) x (\d+)/);
      return m ? [Number(m[1]), Number(m[2])] : null;
    }, { what: 'the endpoint decoding the speaker view', timeout: 30000, interval: 500 });
    console.log('the endpoint decodes the room at', decoded.join(' x '));
    assert.ok(decoded[0] >= 160, `a real picture: ${decoded}`);
    await sleep(3000);
    const metrics = await metricsText(server.base);
    const dropped = metrics.split('\n').filter((l) => l.startsWith('switchboard_sip_video_dropped_total'));
    console.log('video dropped at the gateway:', dropped.length ? dropped.join('; ') : 'none');
    // RTP and RTCP ports come in pairs: nothing of the endpoint's lands on a wrong socket.
    assert.deepEqual(dropped, [], 'no video packet of the endpoint dropped');
  } finally {
    ph?.proc.kill('SIGINT');
    await ph?.done;
    await browser.close();
    server.stop();
  }
  const log = ph.log();
  assert.doesNotMatch(log, /vp8: decode error|corrupt/i, 'no decode errors at the endpoint');
});
