// Helpers for browser end-to-end tests: start the switchboard binary, launch Debian's
// headless Chromium with a fake camera and microphone, read WebRTC stats.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const BIN = process.env.SWITCHBOARD_BIN || join(here, '../../target/debug/switchboard');

// Start the server on a free HTTP port; resolves with { base, proc, stop() }. With
// `netns`, it runs inside that network namespace, listening on `addr`.
export function startServer(extraArgs = [], env = {}, { netns, addr } = {}) {
  // Below Linux's ephemeral range (32768-60999), where an outgoing connection may hold it.
  const rtcPort = 20000 + Math.floor(Math.random() * 12000);
  const where = addr ? ['--http', `${addr}:0`, '--rtc-bind', addr] : ['--http', '127.0.0.1:0'];
  const args = [...where, '--rtc-port', String(rtcPort), '--workers', '2', ...extraArgs];
  const [cmd, argv] = netns ? ['ip', ['netns', 'exec', netns, BIN, ...args]] : [BIN, args];
  // Explicit keys (the same as devToken's) with the development token route on: a keyless
  // server serves only on loopback and signs with a random secret.
  const keys = { SWITCHBOARD_KEYS: `devkey:${TEST_SECRET}`, SWITCHBOARD_DEV: 'true', SWITCHBOARD_METRICS_TOKEN: METRICS_TOKEN };
  const proc = spawn(cmd, argv, { env: { ...process.env, RUST_LOG: 'info', ...keys, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => { log += d; });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${log}`)), 20000);
    proc.on('exit', (code) => reject(new Error(`server exited ${code}:\n${log}`)));
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/open (http:\/\/[^\s/]+)\//);
      if (m) {
        clearTimeout(timer);
        resolve({ base: m[1], proc, log: () => log, stop: () => stopServer(proc) });
      }
    });
  });
}

// SIGINT drains: the server waits for its rooms to empty, and a participant whose page
// just closed keeps its place for the resume grace (20 s). A test is done with its rooms,
// so a second SIGINT half a second later stops it at once. Resolves when it has exited.
function stopServer(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  proc.kill('SIGINT');
  const again = setTimeout(() => proc.kill('SIGINT'), 500);
  return exited.finally(() => clearTimeout(again));
}

export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream=fps=30',
  '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--autoplay-policy=no-user-gesture-required',
];

// One Chromium instance (a separate process tree), one page. With `netns`, Chromium runs
// inside that network namespace; `secureOrigin` lets a page served from a non-loopback
// address use the camera and WebRTC. `viewport` is the window's size (Playwright's
// default: 1280 × 720). `args` are more Chromium flags; one that sets the fake devices
// (`--use-fake-device-for-media-stream=…`) replaces the default one.
export async function openParticipant(url, { netns, secureOrigin, viewport, args: more = [] } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'sb-chromium-'));
  let executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  if (netns) {
    const wrapper = join(dir, 'chromium-in-netns');
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${netns} ${executablePath} "$@"\n`, { mode: 0o755 });
    executablePath = wrapper;
  }
  const flag = (a) => a.split('=')[0];
  const base = CHROMIUM_ARGS.filter((a) => !more.some((m) => flag(m) === flag(a)));
  const args = [...base, ...more, ...(secureOrigin ? [`--unsafely-treat-insecure-origin-as-secure=${secureOrigin}`] : [])];
  const ctx = await chromium.launchPersistentContext(join(dir, 'profile'), { executablePath, headless: true, args, ...(viewport && { viewport }) });
  await ctx.addInitScript(OFFER_SCRIPT);
  const page = ctx.pages()[0] || (await ctx.newPage());
  page.on('console', (m) => { if (m.type() === 'error') console.log(`[page] ${m.text()}`); });
  // A Chromium just started in a fresh namespace may see its interfaces settle and
  // abort the first navigation (ERR_NETWORK_CHANGED): that navigation is tried again.
  for (let attempt = 1; ; attempt++) {
    try { await page.goto(url); break; } catch (e) {
      if (attempt >= 3 || !String(e).includes('ERR_NETWORK_CHANGED')) throw e;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  return { page, close: async () => { await ctx.close(); rmSync(dir, { recursive: true, force: true }); } };
}

// Inbound RTP stats of the subscriber connection, by kind: summed over streams.
export async function inbound(page) {
  return page.evaluate(async () => {
    const pc = window.sb.client?.subPc;
    const out = { audio: { packetsReceived: 0, totalSamplesReceived: 0 }, video: { packetsReceived: 0, framesDecoded: 0, frameWidth: 0, packetsLost: 0, nackCount: 0, freezeCount: 0 } };
    if (!pc) return out;
    for (const s of (await pc.getStats()).values()) {
      if (s.type !== 'inbound-rtp') continue;
      const o = out[s.kind];
      o.packetsReceived += s.packetsReceived || 0;
      if (s.kind === 'audio') o.totalSamplesReceived += s.totalSamplesReceived || 0;
      if (s.kind === 'video') {
        o.framesDecoded += s.framesDecoded || 0; o.frameWidth = Math.max(o.frameWidth, s.frameWidth || 0);
        o.packetsLost += s.packetsLost || 0; o.nackCount += s.nackCount || 0; o.freezeCount += s.freezeCount || 0;
      }
    }
    return out;
  });
}

// The widest video frame a page's subscriber connection decodes (Chromium or Firefox).
export const inboundWidth = (page) => page.evaluate(async () => {
  const pc = window.sb.client?.subPc;
  if (!pc) return 0;
  let w = 0;
  for (const s of (await pc.getStats()).values()) if (s.type === 'inbound-rtp' && s.kind === 'video') w = Math.max(w, s.frameWidth || 0);
  return w;
});

// The video a tile of the web app plays (`selector`, e.g. a screen share's tile): its
// decoded width and frames so far, from the receiver's statistics.
export const tileVideo = (page, selector) => page.evaluate(async (selector) => {
  const video = document.querySelector(`${selector} video`);
  const track = video?.srcObject?.getVideoTracks()[0];
  const receiver = track && window.sb.client?.subPc?.getReceivers().find((r) => r.track === track);
  if (!receiver) return { width: 0, framesDecoded: 0 };
  for (const s of (await receiver.getStats()).values()) {
    if (s.type === 'inbound-rtp') return { width: s.frameWidth || 0, framesDecoded: s.framesDecoded || 0 };
  }
  return { width: 0, framesDecoded: 0 };
}, selector);

// Wait until the web app on `page` shows `name`'s tile playing video.
export const waitForTileVideo = (page, name, timeout = 45000) => waitFor(() => page.evaluate((name) => {
  const tile = [...document.querySelectorAll('#grid .tile')].find((t) => t.querySelector('.label').textContent === name);
  return tile && tile.querySelector('video').videoWidth > 0;
}, name), { what: `${name}'s video playing`, timeout });

export async function waitFor(fn, { timeout = 30000, interval = 250, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, interval));
  }
  throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

// An HS256 JWT signed with the test key every server of startServer has.
import { createHmac } from 'node:crypto';
export const TEST_SECRET = 'browser-tests-only-secret-0123456789';
// /metrics on a server's HTTP address (one in a namespace is not loopback) needs it.
export const METRICS_TOKEN = 'browser-tests-metrics-token';
export const metricsText = async (origin) =>
  (await fetch(`${origin}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
// Signaling sessions a cluster node relayed to a room's home.
export const relayedSessions = async (origin) =>
  Number((await metricsText(origin)).match(/^switchboard_cluster_relayed_sessions_total (\d+)/m)?.[1] ?? 0);
export function devToken(video, ttl = 600, sub = 'test-admin') {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ iss: 'devkey', sub, exp: Math.floor(Date.now() / 1000) + ttl, video })}`;
  const sig = createHmac('sha256', TEST_SECRET).update(body).digest('base64url');
  return `${body}.${sig}`;
}

// Join over the signaling WebSocket from a page (`page`: a Playwright page): resolves with
// the first `joined` or `error` message, `{type: 'closed', code, reason}` or `{type:
// 'timeout'}`. The socket stays open (window.keep) for the rest of the test.
export function wsJoin(page, url, token) {
  return page.evaluate(({ url, token }) => new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onopen = () => ws.send(JSON.stringify({ type: 'join', token }));
    ws.onmessage = (m) => { const msg = JSON.parse(m.data); if (msg.type === 'joined' || msg.type === 'error') { window.keep = ws; resolve(msg); } };
    ws.onclose = (e) => resolve({ type: 'closed', code: e.code, reason: e.reason });
    setTimeout(() => resolve({ type: 'timeout' }), 10000);
  }), { url, token });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Can this process create network namespaces and shape links (root, iproute2, tbf)?
export function canShapeLinks() {
  if (process.getuid?.() !== 0) return false;
  try {
    for (const [cmd, arg] of [['tc', '-V'], ['ip', '-V'], ['nft', '--version']]) execFileSync(cmd, [arg], { stdio: 'ignore' });
    return true;
  } catch { return false; }
}

// Two network namespaces made for one test: `srv` (the server) and `view` (a viewer),
// each joined to the test's own namespace by a veth pair. The server's address on the
// first pair is `addr`; the viewer reaches it through the second pair, whose server-side
// end is where its downlink is shaped. Every address is private to these namespaces.
export function shapedNet(tag = String(process.pid % 10000)) {
  const ip = (...a) => execFileSync('ip', a, { stdio: ['ignore', 'ignore', 'pipe'] });
  const srv = `sbsrv${tag}`, view = `sbview${tag}`;
  const [p0, p1, v0, v1] = [`sbp${tag}a`, `sbp${tag}b`, `sbv${tag}a`, `sbv${tag}b`];
  const cleanup = () => {
    for (const ns of [srv, view]) { try { ip('netns', 'del', ns); } catch {} }
    try { ip('link', 'del', p0); } catch {}
  };
  cleanup();
  ip('netns', 'add', srv);
  ip('netns', 'add', view);
  ip('link', 'add', p0, 'type', 'veth', 'peer', 'name', p1, 'netns', srv);
  ip('link', 'add', v0, 'netns', view, 'type', 'veth', 'peer', 'name', v1, 'netns', srv);
  ip('addr', 'add', '10.201.1.2/24', 'dev', p0);
  ip('link', 'set', p0, 'up');
  const inNs = (ns, ...a) => ip('netns', 'exec', ns, 'ip', ...a);
  inNs(srv, 'addr', 'add', '10.201.1.1/24', 'dev', p1);
  inNs(srv, 'addr', 'add', '10.201.2.1/24', 'dev', v1);
  for (const d of ['lo', p1, v1]) inNs(srv, 'link', 'set', d, 'up');
  inNs(view, 'addr', 'add', '10.201.2.2/24', 'dev', v0);
  for (const d of ['lo', v0]) inNs(view, 'link', 'set', d, 'up');
  inNs(view, 'route', 'add', '10.201.1.0/24', 'via', '10.201.2.1');
  const tc = (...a) => execFileSync('ip', ['netns', 'exec', srv, 'tc', ...a], { stdio: ['ignore', 'ignore', 'pipe'] });
  return {
    srv, view, addr: '10.201.1.1',
    // Cap what the server sends to the viewer (a token bucket: no netem on this kernel).
    capViewer: (rate) => tc('qdisc', 'replace', 'dev', v1, 'root', 'tbf', 'rate', rate, 'burst', '20kb', 'latency', '60ms'),
    uncapViewer: () => tc('qdisc', 'del', 'dev', v1, 'root'),
    // Drop `percent` % of the UDP datagrams reaching the viewer, at random (nftables in
    // the viewer's namespace: this kernel has no netem).
    lossViewer: (percent) => {
      const nft = (...a) => execFileSync('ip', ['netns', 'exec', view, 'nft', ...a], { stdio: ['ignore', 'ignore', 'pipe'] });
      nft('add', 'table', 'inet', 'sbloss');
      nft('add', 'chain', 'inet', 'sbloss', 'in', '{ type filter hook input priority 0 ; }');
      nft('add', 'rule', 'inet', 'sbloss', 'in', 'meta', 'l4proto', 'udp', 'numgen', 'random', 'mod', '100', '<', String(percent), 'drop');
    },
    cleanup,
  };
}

// Debian's Firefox ESR, driven by puppeteer-core over WebDriver BiDi (no geckodriver).
// The four prefs are needed in a loopback-only namespace: a fake camera and microphone,
// no permission prompt, fake capture counted as capture (else Firefox looks for a default
// route, finds none and gathers no candidate), and 127.0.0.1 candidates.
export const FIREFOX = process.env.FIREFOX || '/usr/bin/firefox-esr';
export const FIREFOX_PREFS = {
  'media.navigator.streams.fake': true,
  'media.navigator.permission.disabled': true,
  'media.navigator.permission.fake': true,
  'media.peerconnection.ice.loopback': true,
  'media.autoplay.default': 0,
};

export async function openFirefox(url) {
  const { default: puppeteer } = await import('puppeteer-core');
  const browser = await puppeteer.launch({
    browser: 'firefox', executablePath: FIREFOX, headless: true, extraPrefsFirefox: FIREFOX_PREFS,
  });
  const page = (await browser.pages())[0] || (await browser.newPage());
  page.on('console', (m) => { if (m.type() === 'error') console.log(`[firefox] ${m.text()}`); });
  // A Chromium just started in a fresh namespace may see its interfaces settle and
  // abort the first navigation (ERR_NETWORK_CHANGED): that navigation is tried again.
  for (let attempt = 1; ; attempt++) {
    try { await page.goto(url); break; } catch (e) {
      if (attempt >= 3 || !String(e).includes('ERR_NETWORK_CHANGED')) throw e;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  return { page, close: () => browser.close() };
}

// A TCP port on loopback that accepts, within 5 s (a server just spawned).
export async function waitForPort(port) {
  const net = await import('node:net');
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((r) => { const s = net.connect(port, '127.0.0.1', () => { s.end(); r(true); }); s.on('error', () => r(false)); });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}`);
}

// A free TCP port on loopback.
export const freePort = async () => {
  const net = await import('node:net');
  return new Promise((resolve) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); }); });
};

// Debian's redis-server on loopback, without persistence, for the cluster tests.
export async function redisServer() {
  const port = await freePort();
  const proc = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  try { await waitForPort(port); } catch (e) { proc.kill('SIGKILL'); throw new Error('redis-server did not start'); }
  return { url: `redis://127.0.0.1:${port}/`, stop: () => proc.kill('SIGKILL') };
}

// Whether `cmd` is on the PATH.
export const have = (cmd) => { try { execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }); return true; } catch { return false; } };

// In `page` (a plain page, no SDK): publish the camera and microphone through WHIP at
// `path` with `token` (optionally one video codec, e.g. 'H264'). The connection is
// window.whipPc; resolves with { status, location } or { status, error }.
export function whipPublish(page, path, token, codec) {
  return page.evaluate(async ({ path, token, codec }) => {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 360, frameRate: 15 } });
    const pc = new RTCPeerConnection();
    for (const t of stream.getTracks()) {
      const tr = pc.addTransceiver(t, { direction: 'sendonly' });
      if (codec && t.kind === 'video') tr.setCodecPreferences(RTCRtpSender.getCapabilities('video').codecs.filter((c) => c.mimeType === `video/${codec}`));
    }
    return window.sbOffer(pc, path, token, 'whipPc');
  }, { path, token, codec });
}

// In `page`: play through WHEP at `path` with `token` (receive-only audio and video). The
// connection is window.whepPc; resolves with { status, location } or { status, error }.
export function whepPlay(page, path, token) {
  return page.evaluate(async ({ path, token }) => {
    const pc = new RTCPeerConnection();
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    const video = document.createElement('video');
    video.autoplay = true; video.muted = true; document.body.append(video);
    const ms = new MediaStream();
    pc.ontrack = (e) => { ms.addTrack(e.track); video.srcObject = ms; };
    return window.sbOffer(pc, path, token, 'whepPc');
  }, { path, token });
}

// The offer/answer exchange both use, installed in every page openParticipant opens:
// gather candidates (at most 2 s), POST the offer, apply the answer.
export const OFFER_SCRIPT = `window.sbOffer = async (pc, path, token, name) => {
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
    setTimeout(resolve, 2000);
  });
  const res = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/sdp', authorization: 'Bearer ' + token }, body: pc.localDescription.sdp });
  if (res.status !== 201) return { status: res.status, error: await res.text() };
  await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
  window[name] = pc;
  return { status: res.status, location: res.headers.get('location') };
};`;

// Frames decoded and audio packets received on window.<name>'s inbound streams.
export function inboundCounts(page, name) {
  return page.evaluate(async (name) => {
    let f = 0, a = 0;
    for (const s of (await window[name].getStats()).values()) {
      if (s.type === 'inbound-rtp' && s.kind === 'video') f += s.framesDecoded || 0;
      if (s.type === 'inbound-rtp' && s.kind === 'audio') a += s.packetsReceived || 0;
    }
    return { f, a };
  }, name);
}

// A sine tone of `hz` at half scale, 4 s of 48 kHz 16-bit mono WAV in the temporary
// directory, for Chromium's fake microphone (`--use-file-for-fake-audio-capture=`; it
// loops the file). Returns its path.
export function toneFile(hz) {
  const path = join(tmpdir(), `sb-tone-${hz}.wav`);
  const rate = 48000; const n = rate * 4;
  const b = Buffer.alloc(44 + 2 * n);
  b.write('RIFF', 0); b.writeUInt32LE(36 + 2 * n, 4); b.write('WAVEfmt ', 8);
  b.writeUInt32LE(16, 16); b.writeUInt16LE(1, 20); b.writeUInt16LE(1, 22);
  b.writeUInt32LE(rate, 24); b.writeUInt32LE(2 * rate, 28); b.writeUInt16LE(2, 32); b.writeUInt16LE(16, 34);
  b.write('data', 36); b.writeUInt32LE(2 * n, 40);
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(16000 * Math.sin((2 * Math.PI * hz * i) / rate)), 44 + 2 * i);
  writeFileSync(path, b);
  return path;
}

// The UMD build of livekit-client (the package's `exports` hide it from
// `require.resolve`: read by path), for `page.addScriptTag({ path: LIVEKIT_UMD })`.
export const LIVEKIT_UMD = join(here, 'node_modules/livekit-client/dist/livekit-client.umd.js');

// A page with livekit-client and `sbLoudest` in it, its fake microphone playing `hz`
// (`open`: openParticipant's options).
export async function openLiveKitTonePage(base, hz, open = {}) {
  const page = await openParticipant(`${base}/healthz`, { ...open, args: [`--use-file-for-fake-audio-capture=${toneFile(hz)}`] });
  await page.page.addScriptTag({ path: LIVEKIT_UMD });
  await page.page.addScriptTag({ content: LOUDEST_SCRIPT });
  return page;
}

// In a page (`page.addScriptTag({ content: LOUDEST_SCRIPT })`): `sbLoudest(track, into)`
// pushes the loudest frequency bin of an audio track onto `into` once a second,
// `{hz, db}` (WebAudio, 8192-point FFT).
export const LOUDEST_SCRIPT = `window.sbLoudest = (track, into) => {
  const ctx = new AudioContext();
  const an = ctx.createAnalyser();
  an.fftSize = 8192;
  ctx.createMediaStreamSource(new MediaStream([track])).connect(an);
  const bins = new Float32Array(an.frequencyBinCount);
  setInterval(() => {
    an.getFloatFrequencyData(bins);
    let top = 0;
    for (let i = 1; i < bins.length; i++) if (bins[i] > bins[top]) top = i;
    into.push({ hz: (top * ctx.sampleRate) / an.fftSize, db: bins[top] });
  }, 1000);
};`;
