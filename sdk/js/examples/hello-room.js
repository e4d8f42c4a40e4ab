import { SwitchboardClient } from 'switchboard-client';

// A development token from the server (dev mode); an application server mints its own.
const room = new URLSearchParams(location.search).get('room') || 'hello';
const { token } = await (await fetch(`/api/dev/token?room=${room}&name=hello`)).json();

const client = new SwitchboardClient(`${location.origin.replace(/^http/, 'ws')}/ws`);
client.on('participant_joined', (p) => console.log(`${p.name} joined`));
client.on('track', ({ track }) => {
  const el = document.createElement(track.kind === 'video' ? 'video' : 'audio');
  el.srcObject = new MediaStream([track]);
  el.autoplay = true;
  document.body.append(el);
});
const { participant } = await client.connect(token);
console.log(`joined as ${participant.identity}`);
await client.publish(await navigator.mediaDevices.getUserMedia({ audio: true, video: true }));
