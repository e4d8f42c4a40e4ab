// A native, non-browser LiveKit SDK (issue 32): `@livekit/rtc-node` from npm, which runs
// LiveKit's own Rust SDK and WebRTC stack, joins the room this test process is in. It
// publishes an 880 Hz tone from an `AudioSource`, which a livekit-client participant in
// Chromium receives (the frequency measured in the page), and it receives the browser's
// 440 Hz tone (measured here from the decoded frames).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AccessToken } from 'livekit-server-sdk';
import { Room, RoomEvent, AudioSource, AudioStream, AudioFrame, LocalAudioTrack, TrackPublishOptions, TrackSource, TrackKind, dispose } from '@livekit/rtc-node';
import { startServer, openParticipant, TEST_SECRET, waitFor, toneFile } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const UMD = join(here, 'node_modules/livekit-client/dist/livekit-client.umd.js');

const token = async (identity, room) => {
  const at = new AccessToken('devkey', TEST_SECRET, { identity, ttl: '10m' });
  at.addGrant({ roomJoin: true, room, canPublish: true, canSubscribe: true });
  return at.toJwt();
};


// The frequency of a run of samples: rising zero crossings per second.
function frequency(samples, rate) {
  let crossings = 0;
  for (let i = 1; i < samples.length; i++) if (samples[i - 1] < 0 && samples[i] >= 0) crossings++;
  return (crossings * rate) / samples.length;
}

test('a native LiveKit SDK (@livekit/rtc-node) and a browser hear each other', async () => {
  const server = await startServer();
  const roomName = `lknative${Date.now()}`;
  const url = server.base.replace('http', 'ws');
  const room = new Room();
  let page;
  try {
    // The browser: livekit-client, publishing its fake microphone (a 440 Hz tone, audio
    // processing off so that the tone stays a tone).
    page = await openParticipant(`${server.base}/healthz`, { args: [`--use-file-for-fake-audio-capture=${toneFile(440)}`] });
    await page.page.addScriptTag({ path: UMD });
    await page.page.evaluate(async ({ url, jwt }) => {
      const { Room, RoomEvent } = window.LivekitClient;
      const room = new Room({ audioCaptureDefaults: { noiseSuppression: false, echoCancellation: false, autoGainControl: false } });
      window.heard = null;
      room.on(RoomEvent.TrackSubscribed, (track, pub, participant) => {
        if (track.kind !== 'audio' || participant.identity !== 'native') return;
        const el = track.attach();
        document.body.appendChild(el);
        // The received track's spectrum: its loudest bin, once a second.
        const ctx = new AudioContext();
        const an = ctx.createAnalyser();
        an.fftSize = 8192;
        ctx.createMediaStreamSource(new MediaStream([track.mediaStreamTrack])).connect(an);
        const bins = new Float32Array(an.frequencyBinCount);
        setInterval(() => {
          an.getFloatFrequencyData(bins);
          let top = 0;
          for (let i = 1; i < bins.length; i++) if (bins[i] > bins[top]) top = i;
          window.heard = { hz: (top * ctx.sampleRate) / an.fftSize, db: bins[top] };
        }, 1000);
      });
      await room.connect(url, jwt);
      await room.localParticipant.setMicrophoneEnabled(true);
      window.room = room;
    }, { url, jwt: await token('browser', roomName) });

    // The native SDK, here: it subscribes to the browser's audio and publishes a tone.
    const received = [];
    let rate = 48000;
    room.on(RoomEvent.TrackSubscribed, async (track, pub, participant) => {
      if (track.kind !== TrackKind.KIND_AUDIO || participant.identity !== 'browser') return;
      for await (const frame of new AudioStream(track, 48000, 1)) {
        rate = frame.sampleRate;
        received.push(...frame.data);
        if (received.length > rate * 6) break;
      }
    });
    await room.connect(url, await token('native', roomName), { autoSubscribe: true });
    const source = new AudioSource(48000, 1);
    const track = LocalAudioTrack.createAudioTrack('tone', source);
    const options = new TrackPublishOptions();
    options.source = TrackSource.SOURCE_MICROPHONE;
    await room.localParticipant.publishTrack(track, options);
    let n = 0;
    const until = Date.now() + 8000;
    const heardAtBrowser = [];
    while (Date.now() < until) {
      const b = new Int16Array(480);
      for (let i = 0; i < 480; i++) b[i] = Math.round(12000 * Math.sin((2 * Math.PI * 880 * (n * 480 + i)) / 48000));
      n++;
      await source.captureFrame(new AudioFrame(b, 48000, 1, 480));
      if (n % 100 === 0) heardAtBrowser.push(await page.page.evaluate(() => window.heard));
    }
    // The last 2 s the native SDK received from the browser.
    const tail = received.slice(-rate * 2);
    const atNative = tail.length ? frequency(tail, rate) : 0;
    const atBrowser = heardAtBrowser.filter(Boolean).pop();
    console.log(`native SDK received ${received.length} samples from the browser, ${atNative.toFixed(1)} Hz; the browser hears ${JSON.stringify(atBrowser)} (${n} frames of 10 ms sent)`);
    assert.ok(tail.length >= rate, `the native SDK received the browser's audio (${received.length} samples)`);
    assert.ok(Math.abs(atNative - 440) < 15, `the browser's 440 Hz tone at the native SDK: ${atNative} Hz`);
    assert.ok(atBrowser && Math.abs(atBrowser.hz - 880) < 15 && atBrowser.db > -70, `the native SDK's 880 Hz tone at the browser: ${JSON.stringify(atBrowser)}`);
  } finally {
    await room.disconnect().catch(() => {});
    await dispose().catch(() => {});
    await page?.close();
    await server.stop();
  }
});
