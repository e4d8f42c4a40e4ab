// mediasoup as a load-test target: one Worker per core (pinned like Switchboard's
// workers), one Router per room, WebRtcTransports (ICE-lite) on the given address, and
// an HTTP API through which the harness's str0m clients join, publish and subscribe
// with SDP.
//
//   node bridge.mjs --ip 10.99.77.1 --port 3000 [--workers N] [--rtc-min-port 40000]
//
// API (JSON; errors are {error} with 400 for bad input, 404 for unknown rooms/peers):
//   POST   /rooms/:room/peers                 {name, offer?}  -> {id, answer?}
//   POST   /rooms/:room/peers/:id/subscribe   {expect}        -> {offer, tracks} | 409
//   POST   /rooms/:room/peers/:id/answer      {sdp}           -> {}
//   DELETE /rooms/:room/peers/:id                              -> {}
//   GET    /pids                                               -> {node, workers}
//
// Configured as mediasoup's documentation recommends for production: log level "warn"
// with no log tags, one worker per CPU core, the router's media codecs Opus and VP8,
// UDP preferred. One setting is not its default, for a fair comparison: the transports'
// initial available outgoing bitrate is 2.5 Mbps, the initial estimate Switchboard's
// subscribers start from (mediasoup's default, 600 kbps, kept its consumers on the low
// layers for most of a 20 s run, so it forwarded 2.4-5.8x fewer Mbps than the others
// and the per-packet figures compared small packets with large ones).
import http from 'node:http';
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import * as mediasoup from 'mediasoup';
import {
  SdpError,
  parse,
  dtlsParameters,
  producersFromOffer,
  publishAnswer,
  subscribeOffer,
  consumerCapabilities,
} from './sdp.mjs';

const MEDIA_CODECS = [
  { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
  { kind: 'video', mimeType: 'video/VP8', clockRate: 90000 },
];
const MAX_BODY = 256 * 1024;

function args() {
  const a = { ip: '127.0.0.1', port: 3000, workers: os.availableParallelism(), rtcMinPort: 40000 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (k === '--ip') a.ip = v;
    else if (k === '--port') a.port = Number(v);
    else if (k === '--workers') a.workers = Number(v);
    else if (k === '--rtc-min-port') a.rtcMinPort = Number(v);
    else throw new Error(`unknown argument ${k}`);
  }
  return a;
}

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const cfg = args();
const workers = [];
for (let i = 0; i < cfg.workers; i++) {
  const w = await mediasoup.createWorker({
    logLevel: 'warn',
    rtcMinPort: cfg.rtcMinPort + i * 1000,
    rtcMaxPort: cfg.rtcMinPort + i * 1000 + 999,
  });
  w.on('died', (e) => {
    console.error(`mediasoup worker ${w.pid} died: ${e}`);
    process.exit(1);
  });
  // Pinned alike: worker i on core i (as Switchboard's media workers).
  try {
    execFileSync('taskset', ['-p', '-c', String(i % os.availableParallelism()), String(w.pid)], {
      stdio: 'ignore',
    });
  } catch {
    console.error(`could not pin worker ${w.pid}`);
  }
  workers.push(w);
}

/** room name -> { router, peers: Map<id, Peer> } */
const rooms = new Map();
let nextRoomWorker = 0;
let nextPeer = 1;

// The map holds each room's creation as a promise, set before the first await: two first
// joins at once must share one router (otherwise the second replaces the first and its
// peers end up in a router nobody else is in).
async function roomOf(name, create) {
  let r = rooms.get(name);
  if (!r && create) {
    const worker = workers[nextRoomWorker++ % workers.length];
    r = worker.createRouter({ mediaCodecs: MEDIA_CODECS }).then((router) => ({ router, peers: new Map() }));
    rooms.set(name, r);
  }
  if (!r) throw new HttpError(404, `unknown room ${name}`);
  return r;
}

// What Switchboard's subscriber estimate starts from (sfu-core's INITIAL_ESTIMATE_KBPS).
const INITIAL_OUTGOING_BPS = 2_500_000;

function peerOf(room, id) {
  const p = room.peers.get(Number(id));
  if (!p) throw new HttpError(404, `unknown peer ${id}`);
  return p;
}

const transportOf = (router) =>
  router.createWebRtcTransport({
    listenInfos: [{ protocol: 'udp', ip: cfg.ip }],
    enableUdp: true,
    enableTcp: false,
    preferUdp: true,
    initialAvailableOutgoingBitrate: INITIAL_OUTGOING_BPS,
  });

async function join(roomName, body) {
  if (typeof body.name !== 'string') throw new HttpError(400, 'name: a string');
  const offer = body.offer === undefined ? null : parse(body.offer);
  const room = await roomOf(roomName, true);
  const peer = { id: nextPeer++, name: body.name, send: null, recv: null, producers: [], pending: null };
  let answer;
  if (offer) {
    const wanted = producersFromOffer(offer, room.router.rtpCapabilities);
    if (wanted.every((p) => p.rejected)) throw new SdpError('no codec in common (Opus, VP8)');
    peer.send = await transportOf(room.router);
    await peer.send.connect({ dtlsParameters: dtlsParameters(offer) });
    for (const p of wanted.filter((w) => !w.rejected)) {
      peer.producers.push(await peer.send.produce({ kind: p.kind, rtpParameters: p.rtpParameters }));
    }
    answer = publishAnswer(offer, peer.send, wanted, peer.id);
  }
  room.peers.set(peer.id, peer);
  return { id: peer.id, ...(answer ? { answer } : {}) };
}

async function subscribe(roomName, id, body) {
  const room = await roomOf(roomName, false);
  const peer = peerOf(room, id);
  const others = [...room.peers.values()].filter((p) => p.id !== peer.id && p.producers.length);
  const expect = Number(body.expect ?? 1);
  if (others.length < expect) throw new HttpError(409, `${others.length} of ${expect} publishers in`);
  if (peer.recv) throw new HttpError(400, 'already subscribed');
  peer.recv = await transportOf(room.router);
  const caps = consumerCapabilities(room.router.rtpCapabilities);
  const consumers = [];
  let mid = 0;
  for (const o of others) {
    for (const producer of o.producers) {
      const c = await peer.recv.consume({ producerId: producer.id, rtpCapabilities: caps, mid: String(mid) });
      // The top layer, as the other servers are asked for.
      if (c.type === 'simulcast') await c.setPreferredLayers({ spatialLayer: 2, temporalLayer: 2 });
      consumers.push({
        mid: String(mid++),
        kind: c.kind,
        rtpParameters: c.rtpParameters,
        streamId: `p${o.id}`,
        trackId: c.id,
        publisher: o.id,
      });
    }
  }
  return {
    offer: subscribeOffer(peer.recv, consumers, peer.id),
    tracks: consumers.map((c) => ({ mid: c.mid, kind: c.kind, publisher: c.publisher })),
  };
}

async function answer(roomName, id, body) {
  const room = await roomOf(roomName, false);
  const peer = peerOf(room, id);
  if (!peer.recv) throw new HttpError(400, 'no offer to answer');
  await peer.recv.connect({ dtlsParameters: dtlsParameters(parse(body.sdp)) });
  return {};
}

async function leave(roomName, id) {
  const room = await roomOf(roomName, false);
  const peer = peerOf(room, id);
  peer.send?.close();
  peer.recv?.close();
  room.peers.delete(peer.id);
  if (room.peers.size === 0) {
    room.router.close();
    rooms.delete(roomName);
  }
  return {};
}

async function route(method, path, body) {
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (method === 'GET' && parts[0] === 'pids') {
    return { node: process.pid, workers: workers.map((w) => w.pid) };
  }
  if (parts[0] !== 'rooms' || parts[2] !== 'peers') throw new HttpError(404, 'no such endpoint');
  const [room, id, action] = [parts[1], parts[3], parts[4]];
  if (method === 'POST' && id === undefined) return join(room, body);
  if (method === 'POST' && action === 'subscribe') return subscribe(room, id, body);
  if (method === 'POST' && action === 'answer') return answer(room, id, body);
  if (method === 'DELETE' && action === undefined) return leave(room, id);
  throw new HttpError(404, 'no such endpoint');
}

const server = http.createServer((req, res) => {
  let size = 0;
  const chunks = [];
  req.on('data', (c) => {
    size += c.length;
    if (size > MAX_BODY) req.destroy();
    else chunks.push(c);
  });
  req.on('end', async () => {
    let status = 200;
    let out;
    try {
      const text = Buffer.concat(chunks).toString();
      let body = {};
      if (text) {
        try {
          body = JSON.parse(text);
        } catch {
          throw new HttpError(400, 'body: not JSON');
        }
      }
      out = await route(req.method, new URL(req.url, 'http://x').pathname, body);
    } catch (e) {
      status = e instanceof HttpError ? e.status : e instanceof SdpError ? 400 : 500;
      if (status === 500 && /invalid|missing|wrong|not supported|unsupported/i.test(String(e.message))) {
        status = 400; // mediasoup's own parameter validation
      }
      out = { error: String(e.message ?? e) };
    }
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(out));
  });
});
server.listen(cfg.port, cfg.ip, () => {
  console.log(`pids node=${process.pid} workers=${workers.map((w) => w.pid).join(',')}`);
  console.log(`mediasoup bridge listening on http://${cfg.ip}:${cfg.port} with ${workers.length} workers`);
});
const stop = () => {
  server.close();
  for (const w of workers) w.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
