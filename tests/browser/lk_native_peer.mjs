// The native-SDK side of livekit_native.test.mjs, run as its own process inside the test's
// network namespace (LiveKit's WebRTC stack gathers no loopback candidates, so it needs
// an interface of its own): joins with `@livekit/rtc-node`, publishes an 880 Hz tone from
// an `AudioSource` for SECONDS, and receives the audio of the participant `browser`.
// Prints one JSON line: the samples received and their frequency (zero crossings).
// Usage: node lk_native_peer.mjs <ws url> <token> <seconds>
import { Room, RoomEvent, AudioSource, AudioStream, AudioFrame, LocalAudioTrack, TrackPublishOptions, TrackSource, TrackKind, dispose } from '@livekit/rtc-node';

const [url, token, seconds] = process.argv.slice(2);
const room = new Room();
const received = [];
let rate = 48000;
room.on(RoomEvent.TrackSubscribed, async (track, pub, participant) => {
  if (track.kind !== TrackKind.KIND_AUDIO || participant.identity !== 'browser') return;
  for await (const frame of new AudioStream(track, 48000, 1)) {
    rate = frame.sampleRate;
    received.push(...frame.data);
    if (received.length > rate * 20) break;
  }
});
await room.connect(url, token, { autoSubscribe: true });
const source = new AudioSource(48000, 1);
const track = LocalAudioTrack.createAudioTrack('tone', source);
const options = new TrackPublishOptions();
options.source = TrackSource.SOURCE_MICROPHONE;
await room.localParticipant.publishTrack(track, options);
let n = 0;
const until = Date.now() + Number(seconds) * 1000;
while (Date.now() < until) {
  const b = new Int16Array(480);
  for (let i = 0; i < 480; i++) b[i] = Math.round(12000 * Math.sin((2 * Math.PI * 880 * (n * 480 + i)) / 48000));
  n++;
  await source.captureFrame(new AudioFrame(b, 48000, 1, 480));
}
const tail = received.slice(-rate * 2);
let crossings = 0;
for (let i = 1; i < tail.length; i++) if (tail[i - 1] < 0 && tail[i] >= 0) crossings++;
console.log(JSON.stringify({ samples: received.length, hz: tail.length ? (crossings * rate) / tail.length : 0, sent: n }));
await room.disconnect();
await dispose();
process.exit(0);
