// Debian's baresip as the SIP phones and video endpoints of the browser tests: each one
// a process with its own config directory, bounded in time (`-t`), on loopback.
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, readFileSync, readdirSync, statSync, openSync } from 'node:fs';
import { join } from 'node:path';

export const hasBaresip = (() => { try { execFileSync('sh', ['-c', 'command -v baresip'], { stdio: 'ignore' }); return true; } catch { return false; } })();
export const hasVideoPhone = hasBaresip && (() => {
  try { readFileSync('/usr/lib/baresip/modules/fakevideo.so'); readFileSync('/usr/lib/baresip/modules/vp8.so'); return true; } catch { return false; }
})();

// An audio phone (PCMU, a `tone` Hz sine as its microphone) dialing `dial`; what it hears
// is recorded in `dir` (sndfile: *-dec.wav), and ctrl_tcp listens on port + 1000.
export function phone(dir, { port, rtp, tone, dial, seconds }) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config'), [
    'poll_method epoll', `sip_listen 127.0.0.1:${port}`, 'net_interface 127.0.0.1',
    'audio_player alsa,null', 'audio_alert alsa,null', `audio_source ausine,${tone}`,
    'ausrc_srate 48000', 'ausrc_channels 2', 'auplay_srate 48000', 'audio_level no',
    `rtp_ports ${rtp}`, 'module_path /usr/lib/baresip/modules', 'module g711.so',
    'module ausine.so', 'module alsa.so', 'module sndfile.so', 'module_app account.so',
    'module_app menu.so', 'module_app ctrl_tcp.so', `ctrl_tcp_listen 127.0.0.1:${port + 1000}`,
    `snd_path ${dir}`, '',
  ].join('\n'));
  writeFileSync(join(dir, 'accounts'), `<sip:phone@127.0.0.1:${port}>;regint=0;audio_codecs=PCMU\n`);
  const p = spawn('baresip', ['-f', dir, '-t', String(seconds), '-e', `/dial ${dial}`], { stdio: ['ignore', 'ignore', 'ignore'] });
  return { proc: p, done: new Promise((r) => p.on('exit', r)) };
}

// A baresip video endpoint dialing `dial`; its log (stdout) in `dir/log`.
// `tone`: its microphone's sine (Hz), or null for silence (a WAV of zeros, baresip's
// aufile: its sine cannot go below 10 Hz).
// `srtp`: it insists on SDES-SRTP (mediaenc=srtp-mand: RTP/SAVP with a=crypto lines).
export function videoPhone(dir, { port, rtp, dial, seconds, tone = 440, srtp = false }) {
  // Without `dial`: it waits and answers (answermode=auto).
  mkdirSync(dir, { recursive: true });
  const silence = join(dir, 'silence.wav');
  if (tone === null) writeFileSync(silence, wav(48000, seconds + 5));
  writeFileSync(join(dir, 'config'), [
    'poll_method epoll', `sip_listen 127.0.0.1:${port}`, 'net_interface 127.0.0.1',
    'audio_player alsa,null', 'audio_alert alsa,null',
    tone === null ? `audio_source aufile,${silence}` : `audio_source ausine,${tone}`,
    'ausrc_srate 48000', 'ausrc_channels 2', 'auplay_srate 48000', 'audio_level no',
    'video_source fakevideo,nil', 'video_display fakevideo,nil', 'video_size 640x360',
    'video_fps 15', 'video_bitrate 500000',
    `rtp_ports ${rtp}`, 'module_path /usr/lib/baresip/modules', 'module g711.so',
    'module ausine.so', 'module aufile.so', 'module alsa.so', 'module vp8.so', 'module fakevideo.so',
    'module srtp.so', 'module_app account.so', 'module_app menu.so', '',
  ].join('\n'));
  const keyed = srtp ? ';mediaenc=srtp-mand' : '';
  writeFileSync(join(dir, 'accounts'), `<sip:vtc@127.0.0.1:${port}>;regint=0;answermode=auto;audio_codecs=PCMU;video_codecs=VP8${keyed}\n`);
  const log = openSync(join(dir, 'log'), 'w');
  const dialing = dial ? ['-e', `/dial ${dial}`] : [];
  const p = spawn('baresip', ['-v', '-f', dir, '-t', String(seconds), ...dialing], { stdio: ['ignore', log, log] });
  return { proc: p, done: new Promise((r) => p.on('exit', r)), log: () => readFileSync(join(dir, 'log'), 'utf8') };
}

// A stereo 16-bit WAV of `seconds` of silence at `rate` (what baresip's aufile takes:
// 48 kHz, the channels of ausrc_channels).
export function wav(rate, seconds) {
  const data = rate * seconds * 4;
  const b = Buffer.alloc(44 + data);
  b.write('RIFF', 0); b.writeUInt32LE(36 + data, 4); b.write('WAVEfmt ', 8);
  b.writeUInt32LE(16, 16); b.writeUInt16LE(1, 20); b.writeUInt16LE(2, 22);
  b.writeUInt32LE(rate, 24); b.writeUInt32LE(rate * 4, 28); b.writeUInt16LE(4, 32);
  b.writeUInt16LE(16, 34); b.write('data', 36); b.writeUInt32LE(data, 40);
  return b;
}

// The phone's recording of what it heard: the largest *-dec.wav in its directory.
export function recording(dir) {
  return readdirSync(dir).filter((f) => f.endsWith('-dec.wav')).map((f) => join(dir, f)).sort((a, b) => statSync(b).size - statSync(a).size)[0];
}

// 100 ms blocks of a 16-bit mono WAV (baresip's sndfile recording): RMS, and the share
// of the block's energy at `hz` (Goertzel).
export function blocks(path, hz = 440) {
  const b = readFileSync(path);
  const data = b.subarray(44);
  const rate = b.readUInt32LE(24);
  const n = rate / 10;
  const c = 2 * Math.cos((2 * Math.PI * hz) / rate);
  const out = [];
  for (let i = 0; i + n * 2 <= data.length; i += n * 2) {
    let e = 0, s1 = 0, s2 = 0;
    for (let j = 0; j < n; j++) {
      const v = data.readInt16LE(i + j * 2);
      e += v * v;
      [s1, s2] = [v + c * s1 - s2, s1];
    }
    out.push({ rms: Math.sqrt(e / n), own: e ? (2 * (s1 * s1 + s2 * s2 - c * s1 * s2)) / (n * e) : 0 });
  }
  return out;
}
