// Join time, our SDK against LiveKit's (docs/benchmarks.md): from the call that joins to
// camera and microphone published on a connected publisher connection, in the page's own
// clock. Three ways, alternating, ROUNDS rounds, medians printed:
//   ours        switchboard-client: connect(token), publish(getUserMedia stream)
//   lk          livekit-client's defaults: /rtc/v1 tried first, /rtc/v1/validate → 404,
//               then /rtc (the fallback this server relies on)
//   lk-v0       livekit-client with singlePeerConnection: false: straight to /rtc
// Usage: node join_time.mjs [rounds]   (needs `cargo build -p server`; loopback only)
import { AccessToken } from 'livekit-server-sdk';
import { startServer, openParticipant, TEST_SECRET, devToken, LIVEKIT_UMD } from './lib.mjs';

const ROUNDS = Number(process.argv[2] || 7);

const lkToken = async (identity, room) => {
  const at = new AccessToken('devkey', TEST_SECRET, { identity, ttl: '10m' });
  at.addGrant({ roomJoin: true, room, canPublish: true, canSubscribe: true });
  return at.toJwt();
};

async function lkJoin(page, url, jwt, options) {
  await page.goto(page.url());
  await page.addScriptTag({ path: LIVEKIT_UMD });
  return page.evaluate(async ({ url, jwt, options }) => {
    const room = new window.LivekitClient.Room(options);
    const t0 = performance.now();
    await room.connect(url, jwt);
    await room.localParticipant.enableCameraAndMicrophone();
    const ms = performance.now() - t0;
    await room.disconnect();
    return ms;
  }, { url, jwt, options });
}

async function ourJoin(page, url, jwt) {
  await page.goto(page.url());
  return page.evaluate(async ({ url, jwt }) => {
    const { SwitchboardClient } = await import('/client.js');
    const client = new SwitchboardClient(url);
    const t0 = performance.now();
    await client.connect(jwt);
    await client.publish(await navigator.mediaDevices.getUserMedia({ audio: true, video: true }));
    while (client.pubPc?.connectionState !== 'connected') await new Promise((r) => setTimeout(r, 5));
    const ms = performance.now() - t0;
    client.leave();
    return ms;
  }, { url, jwt });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const server = await startServer();
const url = server.base.replace('http', 'ws');
const pages = {};
try {
  for (const k of ['ours', 'lk', 'lk-v0']) pages[k] = await openParticipant(`${server.base}/healthz`);
  const times = { ours: [], lk: [], 'lk-v0': [] };
  for (let r = 0; r < ROUNDS; r++) {
    const room = `jt${Date.now()}${r}`;
    times.ours.push(await ourJoin(pages.ours.page, `${url}/ws`, devToken({ room, roomJoin: true, canPublish: true, canSubscribe: true }, 600, `ours${r}`)));
    times.lk.push(await lkJoin(pages.lk.page, url, await lkToken(`lk${r}`, room), {}));
    times['lk-v0'].push(await lkJoin(pages['lk-v0'].page, url, await lkToken(`v0${r}`, room), { singlePeerConnection: false }));
  }
  for (const [k, v] of Object.entries(times)) {
    console.log(`${k.padEnd(6)} median ${median(v).toFixed(0)} ms  (${v.map((x) => x.toFixed(0)).join(', ')})`);
  }
} finally {
  for (const p of Object.values(pages)) await p.close();
  await server.stop();
}
