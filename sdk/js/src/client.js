// Switchboard client SDK: the signaling protocol (docs/protocol.md) over WebSocket,
// a publisher RTCPeerConnection (we offer) and a subscriber one (the server offers),
// resume and rejoin. No dependencies; docs/sdk.md. Types: typed JSDoc here, from which
// `npm run types` generates types/client.d.ts.

import { rateQuality } from './quality.js';

export { rateQuality, QUALITY_THRESHOLDS } from './quality.js';

/** The signaling protocol version this SDK speaks (the package's major version). */
export const PROTOCOL_VERSION = 1;

/**
 * @typedef {object} TrackInfo
 * @property {number} id
 * @property {'audio' | 'video'} kind
 * @property {string[]} simulcast  the publisher's rids, empty without simulcast
 * @property {'camera' | 'microphone' | 'screen_share' | 'screen_share_audio' | 'unknown'} source
 */

/**
 * @typedef {object} ParticipantInfo
 * @property {number} id
 * @property {string} identity
 * @property {string} name
 * @property {boolean} reconnecting
 * @property {string} kind  `standard`, `sip`, `ingress`, `egress`, `agent`
 * @property {TrackInfo[]} tracks
 * @property {boolean} audio_muted
 * @property {boolean} video_muted
 * @property {string} metadata
 * @property {Record<string, string>} [attributes]  from the access token (LiveKit's `attributes` claim)
 * @property {number} joined_at  Unix seconds
 */

/**
 * @typedef {object} RemoteTrack
 * @property {number} publisher  the participant id
 * @property {'audio' | 'video'} kind
 * @property {MediaStreamTrack} track
 * @property {MediaStream} stream
 * @property {string} mid
 * @property {number | undefined} trackId  the server's track id (viewport, quality)
 * @property {TrackInfo['source']} source  as the publisher declared it
 */

/**
 * @typedef {object} SubscriptionStat  one remote track as the server forwards it to us
 * @property {number} track
 * @property {number} publisher
 * @property {string | null} current  the simulcast layer (rid) forwarded now; null: paused
 * @property {string | null} target  the layer the allocator aims at
 * @property {string[]} available  the layers the publisher sends
 * @property {number} allocated_bps
 * @property {number} used_bps
 * @property {number} switches
 * @property {number} pauses
 */

/**
 * @typedef {'excellent' | 'good' | 'poor' | 'lost'} Quality
 */

/**
 * The events of a {@link SwitchboardClient}, by name, with what they carry.
 * @typedef {object} ClientEvents
 * @property {ParticipantInfo} participant_joined
 * @property {{participant: number, reason: string}} participant_left
 * @property {ParticipantInfo} participant_updated
 * @property {RemoteTrack} track
 * @property {{participant: number, kind: 'audio' | 'video', muted: boolean, by_admin: boolean}} mute_changed
 * @property {{participant: number}} active_speaker  the loudest participant
 * @property {{from?: number, payload: string, topic?: string}} data  `from` is absent
 *   for a message sent through the REST API
 * @property {{state: 'connected' | 'reconnecting' | 'rejoining'}} connection
 * @property {{participant: number}} rejoined
 * @property {{code: number, reason: string}} closed
 * @property {{code: string, message: string}} error
 * @property {{track: number, layer?: string, paused: boolean}} subscription_changed  the
 *   server switched our video of `track` to another layer, or paused it for lack of
 *   bandwidth, or resumed it
 * @property {{estimate_bps?: number, subscriptions: SubscriptionStat[]}} subscription_stats
 *   every 2 s
 * @property {{track: number, mid: string, layers: {rid: string, active: boolean}[]}} publisher_layers
 * @property {{metadata: string}} room_updated
 * @property {{participant: number, track: TrackInfo}} track_published
 * @property {{participant: number, track: number}} track_unpublished
 * @property {{source: 'screen_share', active: boolean}} local_share  our screen share
 *   started or stopped (also when the browser's own "stop sharing" ended it)
 * @property {{pc: 'publisher' | 'subscriber', state: RTCIceConnectionState}} ice
 * @property {{pc: 'publisher' | 'subscriber'}} ice_restart
 */

/**
 * @typedef {object} ClientOptions
 * @property {RTCIceTransportPolicy} [iceTransportPolicy]  `relay` sends all media
 *   through the TURN servers the server hands out at join
 * @property {typeof WebSocket} [WebSocket]  the WebSocket class (default: the global one)
 */

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * The room an access token is for (its `video.room` claim), read without checking the
 * signature (the server checks it): to tell a user that a link's token is for another
 * room before joining. Null when the token cannot be read.
 * @param {string} token
 * @returns {string | null}
 */
export function tokenRoom(token) {
  try {
    const body = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = new TextDecoder().decode(Uint8Array.from(atob(body), (c) => c.charCodeAt(0)));
    const room = JSON.parse(json).video?.room;
    return typeof room === 'string' ? room : null;
  } catch {
    return null;
  }
}

/** A session in one room: join, publish, subscribe, data, leave. */
export class SwitchboardClient extends EventTarget {
  /**
   * @param {string} wsUrl  the server's signaling endpoint, `ws(s)://host:port/ws`
   * @param {ClientOptions} [options]
   */
  constructor(wsUrl, { iceTransportPolicy = 'all', WebSocket: Socket = globalThis.WebSocket } = {}) {
    super();
    this.wsUrl = wsUrl;
    this.Socket = Socket;
    this.iceTransportPolicy = iceTransportPolicy;
    this.iceServers = [];
    this.ws = null;
    this.pubPc = null;
    this.subPc = null;
    /** @type {ParticipantInfo | null} this participant, once joined */
    this.me = null;
    /** @type {Map<number, ParticipantInfo>} the others in the room, by id */
    this.participants = new Map();
    this.tracksByMid = new Map(); // subscriber mid -> {track, publisher, kind}
    this.subChain = Promise.resolve();
    // Offers on the publisher connection go one at a time (publish, screen share, ICE
    // restart): each waits for its answer before the next.
    this.pubChain = Promise.resolve();
    this.pendingAnswer = null;
    this.answerTimeoutMs = 10000;
    /** @type {Map<RTCRtpTransceiver, TrackInfo['source']>} what each sender carries */
    this.sources = new Map();
    /** @type {{[kind: string]: MediaStreamTrack}} the camera and microphone tracks sent */
    this.localTracks = {};
    /** @type {{stream: MediaStream, transceiver: RTCRtpTransceiver} | null} */
    this.screen = null;
    this.connectionState = 'new';
    // Resume: the first retry after a drop, and how long to keep trying (the server's
    // grace period is 20 s by default).
    this.reconnectDelayMs = 250;
    this.resumeWindowMs = 25000;
    // Heartbeat: a ping this often; a socket that brought nothing for `deadAfterMs` is
    // taken for dead (a network cut leaves a TCP connection open for minutes) and the
    // session is resumed on a new one.
    this.heartbeatMs = 4000;
    this.deadAfterMs = 12000;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /**
   * Call `fn` with each `type` event's detail; returns a function that stops it.
   * @template {keyof ClientEvents} K
   * @param {K} type
   * @param {(detail: ClientEvents[K]) => void} fn
   * @returns {() => void}
   */
  on(type, fn) {
    /** @param {Event} e */
    const listener = (e) => fn(/** @type {CustomEvent} */ (e).detail);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  send(msg) {
    if (this.ws && this.ws.readyState === this.Socket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  /**
   * Open the WebSocket and join with `token`. Resolves with the `joined` message; rejects
   * with an Error whose `code` is the server's (`room_full`, `unauthorized`, …). If the
   * socket drops later, the client resumes the session by itself (same participant, no
   * renegotiation), or, when the server refuses, joins anew and republishes.
   * @param {string} token  an access token (JWT) for the room
   * @returns {Promise<{participant: ParticipantInfo, others: ParticipantInfo[]}>}
   */
  connect(token) {
    this.joinToken = token;
    this.leaving = false;
    return this.openSession({ type: 'join', token, version: PROTOCOL_VERSION, resume: true }, 'joined');
  }

  // A socket that sends `first` and resolves with the `expect` message (joined, resumed).
  // With `openWithinMs`, a socket not open by then is given up (a connection attempt
  // into a cut network waits on the kernel's SYN backoff; a fresh one goes out at once).
  openSession(first, expect, { openWithinMs } = {}) {
    return new Promise((resolve, reject) => {
      const ws = new this.Socket(this.wsUrl);
      this.ws = ws;
      let ready = false;
      const fail = (code, message) => { ready = true; reject(Object.assign(new Error(message), { code })); };
      if (openWithinMs) {
        setTimeout(() => {
          if (ws.readyState !== this.Socket.CONNECTING || ready) return;
          if (this.ws === ws) this.ws = null;
          try { ws.close(); } catch {}
          fail(1006, 'could not connect');
        }, openWithinMs);
      }
      ws.onopen = () => ws.send(JSON.stringify(first));
      ws.onerror = () => {};
      ws.onclose = (ev) => {
        if (this.ws !== ws) return;
        clearInterval(heartbeat);
        if (!ready) return fail(ev.code, `closed ${ev.code} ${ev.reason}`);
        this.onSocketClosed(ev);
      };
      let heard = Date.now();
      const heartbeat = setInterval(() => {
        if (this.ws !== ws) return clearInterval(heartbeat);
        if (Date.now() - heard > this.deadAfterMs) {
          // Dead: let it go (its close may take minutes) and carry on without it.
          clearInterval(heartbeat);
          this.ws = null;
          try { ws.close(); } catch {}
          if (!ready) return fail(1006, 'no answer from the server');
          return this.onSocketClosed({ code: 1006, reason: 'no answer from the server' });
        }
        if (ready && ws.readyState === this.Socket.OPEN) ws.send(JSON.stringify({ type: 'ping' }));
      }, this.heartbeatMs);
      ws.onmessage = (ev) => {
        heard = Date.now();
        let msg;
        try { msg = JSON.parse(ev.data); } catch { return; }
        // Before `joined` any error is the join's; before `resumed` only the refusal is
        // the resume's (queued messages of the gap may carry other errors).
        // A cluster node that is not the room's home says where it is: the same first
        // message goes there (and later reconnections too).
        if (!ready && msg.type === 'moved') {
          ready = true;
          clearInterval(heartbeat);
          if (this.ws === ws) this.ws = null;
          try { ws.close(); } catch {}
          this.wsUrl = msg.url;
          return this.openSession(first, expect, { openWithinMs }).then(resolve, reject);
        }
        if (!ready && msg.type === 'error' && (expect === 'joined' || msg.code === 'resume_refused')) {
          return fail(msg.code, `${msg.code}: ${msg.message}`);
        }
        if (!ready && msg.type === expect) {
          ready = true;
          this.me = msg.participant;
          this.resumeToken = msg.resume_token || null;
          if (msg.type === 'joined') {
            this.iceServers = msg.ice_servers || [];
            for (const p of msg.others) this.participants.set(p.id, p);
          }
          resolve(msg);
        }
        this.onMessage(msg);
      };
    });
  }

  setConnection(state) {
    this.connectionState = state;
    this.emit('connection', { state });
  }

  // The socket ended after the join: leave, or resume.
  onSocketClosed(ev) {
    // An offer sent on this socket will get no answer: it fails now (and is rolled back),
    // so that the next one (an ICE restart after resume) is not held up.
    this.pendingAnswer?.reject(Object.assign(new Error('the signaling connection closed'), { code: 'closed' }));
    this.pendingAnswer = null;
    const final = this.leaving || !this.resumeToken || [4004, 4010].includes(ev.code);
    if (final) return this.emit('closed', { code: ev.code, reason: ev.reason });
    // The server removed us for a lost media connection (a long network cut): there is
    // no session to resume; join again, and again, until the network is back.
    if (ev.code === 4012) return this.rejoin();
    this.reconnect();
  }

  // Resume with backoff within the server's grace period; refused or out of time: rejoin.
  async reconnect() {
    this.setConnection('reconnecting');
    const deadline = Date.now() + this.resumeWindowMs;
    let delay = this.reconnectDelayMs;
    while (!this.leaving && Date.now() < deadline) {
      await sleep(delay);
      delay = Math.min(delay * 2, 1000);
      try {
        await this.openSession({ type: 'resume', token: this.resumeToken, access_token: this.joinToken }, 'resumed', { openWithinMs: 2000 });
        this.setConnection('connected');
        return;
      } catch (e) {
        if (e.code === 'resume_refused' || e.code === 4011) break;
      }
    }
    if (!this.leaving) await this.rejoin();
  }

  // A new session from scratch: new connections, the same media published again.
  async rejoin() {
    this.setConnection('rejoining');
    for (const pc of [this.pubPc, this.subPc]) if (pc) pc.close();
    this.pubPc = this.subPc = null;
    this.tracksByMid = new Map();
    this.subChain = Promise.resolve();
    this.pubChain = Promise.resolve();
    this.sources = new Map();
    for (const id of [...this.participants.keys()]) {
      this.participants.delete(id);
      this.emit('participant_left', { participant: id, reason: 'rejoining' });
    }
    let delay = 500;
    const deadline = Date.now() + 60000;
    while (!this.leaving) {
      try {
        await this.connect(this.joinToken);
        if (this.published) await this.publish(this.published.stream, this.published.options);
        if (this.screen) await this.shareOn(this.screen.stream, this.screen.options);
        this.setConnection('connected');
        this.emit('rejoined', { participant: this.me });
        return;
      } catch (e) {
        if (Date.now() > deadline) return this.emit('closed', { code: 0, reason: `could not rejoin: ${e.message}` });
        await sleep(delay);
        delay = Math.min(delay * 2, 5000);
      }
    }
  }

  onMessage(msg) {
    switch (msg.type) {
      case 'joined':
        for (const p of msg.others) this.emit('participant_joined', p);
        break;
      case 'resumed': {
        // A media connection that broke meanwhile is restarted now that we can talk.
        this.restartBrokenIce();
        // Reconcile with the room as it is now.
        const now = new Map(msg.others.map((p) => [p.id, p]));
        for (const id of [...this.participants.keys()]) {
          if (!now.has(id)) {
            this.participants.delete(id);
            this.emit('participant_left', { participant: id, reason: 'left' });
          }
        }
        for (const p of msg.others) {
          const known = this.participants.has(p.id);
          this.participants.set(p.id, p);
          this.emit(known ? 'participant_updated' : 'participant_joined', p);
        }
        break;
      }
      case 'participant_joined':
        this.participants.set(msg.participant.id, msg.participant);
        this.emit('participant_joined', msg.participant);
        break;
      case 'participant_left':
        this.participants.delete(msg.participant);
        this.emit('participant_left', msg);
        break;
      case 'publish_answer': {
        const pending = this.pendingAnswer;
        this.pendingAnswer = null;
        const applied = this.pubPc ? this.pubPc.setRemoteDescription({ type: 'answer', sdp: msg.sdp }) : Promise.resolve();
        applied.then(() => pending?.resolve(), (e) => {
          pending?.reject(e);
          this.emit('error', { code: 'sdp', message: String(e) });
        });
        break;
      }
      case 'subscribe_offer':
        this.subChain = this.subChain.then(() => this.onSubscribeOffer(msg)).catch((e) => this.emit('error', { code: 'sdp', message: String(e) }));
        break;
      case 'mute_changed': {
        const p = this.me?.id === msg.participant ? this.me : this.participants.get(msg.participant);
        if (p) p[msg.kind === 'audio' ? 'audio_muted' : 'video_muted'] = msg.muted;
        // An administrator muted us: stop sending from this side too.
        if (this.me && msg.participant === this.me.id) {
          const t = this.localTracks[msg.kind];
          if (t) t.enabled = !msg.muted;
        }
        this.emit('mute_changed', msg);
        break;
      }
      case 'participant_updated':
        if (this.me && msg.participant.id === this.me.id) this.me = msg.participant;
        else this.participants.set(msg.participant.id, msg.participant);
        this.emit('participant_updated', msg.participant);
        break;
      case 'publisher_layers':
        // Dynacast: encode only the layers someone receives. One change at a time: a
        // sender refuses a setParameters whose getParameters another one overtook.
        this.layersChain = (this.layersChain || Promise.resolve())
          .then(() => this.applyLayers(msg))
          .catch((e) => this.emit('error', { code: 'dynacast', message: String(e) }));
        this.emit(msg.type, msg);
        break;
      case 'subscription_stats':
        this.lastStats = msg;
        this.emit(msg.type, msg);
        break;
      case 'track_published': {
        const p = this.participants.get(msg.participant);
        if (p) p.tracks = [...p.tracks.filter((t) => t.id !== msg.track.id), msg.track];
        this.emit(msg.type, msg);
        break;
      }
      case 'track_unpublished': {
        const p = this.participants.get(msg.participant);
        if (p) p.tracks = p.tracks.filter((t) => t.id !== msg.track);
        this.emit(msg.type, msg);
        break;
      }
      case 'error':
        // The media plane refused an offer we wait on (e.g. a source the token does
        // not grant): that offer fails.
        if (this.pendingAnswer && ['media', 'not_allowed'].includes(msg.code)) {
          this.pendingAnswer.reject(Object.assign(new Error(`${msg.code}: ${msg.message}`), { code: msg.code }));
          this.pendingAnswer = null;
        }
        this.emit(msg.type, msg);
        break;
      case 'room_updated':
      case 'active_speaker':
      case 'subscription_changed':
      case 'data':
        this.emit(msg.type, msg);
        break;
    }
  }

  // A peer connection with the TURN servers of the join response; a TURN server that
  // refuses us (e.g. 401: wrong or expired credentials) is reported as an error. When its
  // ICE fails (the network path broke for longer than ICE waits), ICE is restarted.
  newPc(kind) {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, iceTransportPolicy: this.iceTransportPolicy });
    pc.addEventListener('icecandidateerror', (e) => {
      if (!e.url || !/^turns?:/.test(e.url)) return;
      this.emit('error', { code: 'turn', message: `TURN server ${e.url} refused: ${e.errorCode} ${e.errorText}` });
    });
    pc.addEventListener('iceconnectionstatechange', () => {
      this.emit('ice', { pc: kind, state: pc.iceConnectionState });
      if (pc.iceConnectionState === 'failed') this.restartIce(kind);
    });
    return pc;
  }

  // ICE restart of one connection, over signaling: new credentials on both sides, the
  // same tracks. The publisher connection offers them (publish_offer); the subscriber
  // connection asks the server for an offer with them.
  async restartIce(kind) {
    try {
      if (kind === 'publisher') {
        if (!this.pubPc) return;
        await this.negotiate({ iceRestart: true });
      } else {
        if (!this.subPc) return;
        this.send({ type: 'ice_restart', pc: 'subscriber' });
      }
      this.emit('ice_restart', { pc: kind });
    } catch (e) {
      this.emit('error', { code: 'ice_restart', message: String(e) });
    }
  }

  restartBrokenIce() {
    const broken = (pc) => pc && ['failed', 'disconnected'].includes(pc.iceConnectionState);
    if (broken(this.pubPc)) this.restartIce('publisher');
    if (broken(this.subPc)) this.restartIce('subscriber');
  }

  // What each publisher m-line carries (the server checks it against the token's grant).
  declaredSources(pc) {
    /** @type {{[mid: string]: string}} */
    const sources = {};
    for (const t of pc.getTransceivers()) {
      if (!t.mid || t.direction === 'inactive' || t.currentDirection === 'stopped') continue;
      const source = this.sources.get(t);
      if (source) sources[t.mid] = source;
    }
    return sources;
  }

  /**
   * Offer the publisher connection's current state and wait for the answer (one offer at
   * a time). Rejects when the server refuses it or does not answer in time; the offer is
   * then rolled back.
   * @param {{iceRestart?: boolean}} [options]
   * @returns {Promise<void>}
   */
  negotiate({ iceRestart = false } = {}) {
    const run = async () => {
      const pc = this.pubPc;
      if (!pc) return;
      await pc.setLocalDescription(await pc.createOffer({ iceRestart }));
      let timer;
      const answered = new Promise((resolve, reject) => {
        this.pendingAnswer = { resolve, reject };
        timer = setTimeout(() => reject(Object.assign(new Error('no answer to the publish offer'), { code: 'timeout' })), this.answerTimeoutMs);
      });
      this.send({ type: 'publish_offer', sdp: pc.localDescription.sdp, sources: this.declaredSources(pc) });
      try {
        await answered;
      } catch (e) {
        this.pendingAnswer = null;
        if (pc.signalingState === 'have-local-offer') await pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
        throw e;
      } finally {
        clearTimeout(timer);
      }
    };
    const done = this.pubChain.then(run);
    this.pubChain = done.catch(() => {});
    return done;
  }

  async onSubscribeOffer(msg) {
    this.tracksByMid = new Map(msg.tracks.map((t) => [t.mid, t]));
    if (!this.subPc) {
      this.subPc = this.newPc('subscriber');
      this.subPc.onicecandidate = (e) => {
        if (e.candidate) this.send({ type: 'candidate', pc: 'subscriber', candidate: e.candidate.candidate });
      };
      this.subPc.ontrack = (e) => {
        const info = this.tracksByMid.get(e.transceiver.mid);
        const publisher = info ? info.publisher : Number((e.streams[0]?.id || 'PA_0').replace(/^PA_/, ''));
        const trackId = info?.track;
        this.emit('track', {
          publisher, kind: e.track.kind, track: e.track, stream: e.streams[0], mid: e.transceiver.mid,
          trackId, source: this.sourceOf(publisher, trackId),
        });
      };
    }
    await this.subPc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
    const answer = await this.subPc.createAnswer();
    await this.subPc.setLocalDescription(answer);
    this.send({ type: 'subscribe_answer', sdp: this.subPc.localDescription.sdp });
  }

  /**
   * How a remote track's publisher declared it (`camera`, `screen_share`, …), from the
   * room's track list; `unknown` when not (yet) known.
   * @param {number} publisher
   * @param {number | undefined} trackId
   * @returns {TrackInfo['source']}
   */
  sourceOf(publisher, trackId) {
    const p = this.participants.get(publisher);
    return p?.tracks.find((t) => t.id === trackId)?.source || 'unknown';
  }

  /**
   * Publish a camera/microphone stream; video goes out as three simulcast encodings
   * (rid q/h/f at 1/4, 1/2 and full size) unless `simulcast` is false.
   * @param {MediaStream} stream
   * @param {{simulcast?: boolean}} [options]
   * @returns {Promise<void>}
   */
  async publish(stream, { simulcast = true } = {}) {
    this.published = { stream, options: { simulcast } };
    const pc = this.newPc('publisher');
    this.pubPc = pc;
    pc.onicecandidate = (e) => {
      if (e.candidate) this.send({ type: 'candidate', pc: 'publisher', candidate: e.candidate.candidate });
    };
    const audio = stream.getAudioTracks()[0];
    const video = stream.getVideoTracks()[0];
    if (audio) {
      this.sources.set(pc.addTransceiver(audio, { direction: 'sendonly', streams: [stream] }), 'microphone');
      this.localTracks.audio = audio;
    }
    if (video) {
      const sendEncodings = simulcast
        ? [
            // Three temporal layers each (VP8 L1T3): the server drops frame rate
            // before resolution when a subscriber's bandwidth is short.
            { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000, scalabilityMode: 'L1T3' },
            { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000, scalabilityMode: 'L1T3' },
            { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_700_000, scalabilityMode: 'L1T3' },
          ]
        : undefined;
      this.sources.set(pc.addTransceiver(video, { direction: 'sendonly', streams: [stream], sendEncodings }), 'camera');
      this.localTracks.video = video;
    }
    await this.negotiate();
  }

  /**
   * Share a screen: `stream` from `getDisplayMedia()` goes out as one more video (source
   * `screen_share`: the server gives it the first share of every subscriber's bandwidth),
   * one encoding at full resolution, tuned for detail; the camera keeps going. Resolves
   * once the server answered; rejects (and shares nothing) when the token does not grant
   * `screen_share`. When the browser's own "stop sharing" ends the track, the share stops.
   * @param {MediaStream} stream
   * @param {{maxBitrate?: number, maxFramerate?: number}} [options]  default 1.5 Mbit/s, 15 fps
   * @returns {Promise<void>}
   */
  async publishScreen(stream, options = {}) {
    if (!this.pubPc) throw Object.assign(new Error('publish a camera or microphone first'), { code: 'bad_state' });
    if (this.screen) await this.stopScreen();
    await this.shareOn(stream, options);
    this.emit('local_share', { source: 'screen_share', active: true });
  }

  // The screen share's sender, added to the publisher connection and negotiated. Each
  // share is a new m-line (the server publishes a track when an m-line starts receiving).
  async shareOn(stream, { maxBitrate = 1_500_000, maxFramerate = 15 } = {}) {
    const video = stream.getVideoTracks()[0];
    if (!video) throw Object.assign(new Error('no video in the screen stream'), { code: 'bad_state' });
    video.contentHint = 'detail';
    const transceiver = this.pubPc.addTransceiver(video, {
      direction: 'sendonly', streams: [stream], sendEncodings: [{ maxBitrate, maxFramerate }],
    });
    this.sources.set(transceiver, 'screen_share');
    this.screen = { stream, transceiver, options: { maxBitrate, maxFramerate } };
    video.addEventListener('ended', () => { if (this.screen?.stream === stream) this.stopScreen(); }, { once: true });
    try {
      await this.negotiate();
      const params = transceiver.sender.getParameters();
      params.degradationPreference = 'maintain-resolution';
      await transceiver.sender.setParameters(params).catch(() => {});
    } catch (e) {
      this.sources.delete(transceiver);
      transceiver.direction = 'inactive';
      await transceiver.sender.replaceTrack(null).catch(() => {});
      this.screen = null;
      throw e;
    }
  }

  /** Whether our screen is being shared. */
  get sharing() {
    return this.screen !== null;
  }

  /**
   * Stop sharing the screen: its track stops and the others see it unpublished.
   * @returns {Promise<void>}
   */
  async stopScreen() {
    const share = this.screen;
    if (!share) return;
    this.screen = null;
    for (const t of share.stream.getTracks()) t.stop();
    this.sources.delete(share.transceiver);
    if (this.pubPc && share.transceiver.currentDirection !== 'stopped') {
      share.transceiver.direction = 'inactive';
      await share.transceiver.sender.replaceTrack(null).catch(() => {});
      await this.negotiate().catch((e) => this.emit('error', { code: 'sdp', message: String(e) }));
    }
    this.emit('local_share', { source: 'screen_share', active: false });
  }

  /**
   * Send `track` instead of the current camera (video) or microphone (audio) track: a
   * device switch without renegotiation (RTCRtpSender.replaceTrack), nobody's connection
   * changes. The mute state carries over. Returns the old track (stop it when done).
   * @param {'audio' | 'video'} kind
   * @param {MediaStreamTrack} track
   * @returns {Promise<MediaStreamTrack | undefined>}
   */
  async replaceTrack(kind, track) {
    const old = this.localTracks[kind];
    const transceiver = [...this.sources].find(([t, s]) => s === (kind === 'audio' ? 'microphone' : 'camera'))?.[0];
    if (!transceiver) throw Object.assign(new Error(`no ${kind} published`), { code: 'bad_state' });
    if (old) track.enabled = old.enabled;
    await transceiver.sender.replaceTrack(track);
    this.localTracks[kind] = track;
    // A rejoin publishes what is sent now.
    const stream = this.published?.stream;
    if (stream) {
      if (old) stream.removeTrack(old);
      stream.addTrack(track);
    }
    return old;
  }

  async applyLayers(msg) {
    const t = this.pubPc?.getTransceivers().find((x) => x.mid === msg.mid);
    if (!t) return;
    const params = t.sender.getParameters();
    let changed = false;
    for (const e of params.encodings || []) {
      const l = msg.layers.find((x) => x.rid === e.rid);
      if (l && e.active !== l.active) { e.active = l.active; changed = true; }
    }
    if (changed) await t.sender.setParameters(params);
  }

  /**
   * The most we want of a remote video.
   * @param {number} track  the track id
   * @param {'low' | 'medium' | 'high' | null} quality  null: no cap
   */
  setPreferredQuality(track, quality) {
    this.send({ type: 'preferred_quality', track, quality });
  }

  /**
   * Tell the server how big a remote video is shown (it picks the layer to match).
   * @param {number} track  the track id
   * @param {number} width  CSS pixels times the device pixel ratio
   * @param {number} height
   * @param {boolean} visible
   */
  setViewport(track, width, height, visible) {
    this.send({ type: 'viewport', track, width: Math.round(width), height: Math.round(height), visible });
  }

  /**
   * Play a remote track in `el`, and keep the server told how large it is shown (its
   * size in device pixels and whether it is on screen), so that it sends the simulcast
   * layer that fits. Returns a function that stops watching (and detaches the track).
   * @param {RemoteTrack} remote  from the `track` event
   * @param {HTMLMediaElement} el
   * @returns {() => void}
   */
  attach(remote, el) {
    const stream = el.srcObject instanceof MediaStream ? el.srcObject : new MediaStream();
    if (!stream.getTracks().includes(remote.track)) stream.addTrack(remote.track);
    if (el.srcObject !== stream) el.srcObject = stream;
    el.play?.().catch(() => {});
    if (remote.kind !== 'video') return () => stream.removeTrack(remote.track);
    let onScreen = true;
    const report = () => {
      const info = this.tracksByMid.get(remote.mid);
      if (!info) return;
      const r = el.getBoundingClientRect();
      const dpr = globalThis.devicePixelRatio || 1;
      const visible = onScreen && r.width > 0 && document.visibilityState === 'visible';
      this.setViewport(info.track, r.width * dpr, r.height * dpr, visible);
    };
    const sizes = new ResizeObserver(report);
    sizes.observe(el);
    const seen = new IntersectionObserver((entries) => {
      onScreen = entries.some((e) => e.isIntersecting);
      report();
    });
    seen.observe(el);
    document.addEventListener('visibilitychange', report);
    report();
    return () => {
      sizes.disconnect();
      seen.disconnect();
      document.removeEventListener('visibilitychange', report);
      stream.removeTrack(remote.track);
    };
  }

  /**
   * How well a remote track arrives since the last call for it (the first call counts
   * from the start): the browser's receive statistics and what the server forwards.
   * @param {RemoteTrack} remote
   * @returns {Promise<{quality: Quality, layer: string | null, lossPercent: number, jitterMs: number}>}
   */
  async connectionQuality(remote) {
    if (!this.subPc) return { quality: 'lost', layer: null, lossPercent: 0, jitterMs: 0 };
    let now = { packetsReceived: 0, packetsLost: 0, jitter: 0, freezeCount: 0 };
    for (const r of (await this.subPc.getStats(remote.track)).values()) {
      if (r.type === 'inbound-rtp') now = { packetsReceived: r.packetsReceived || 0, packetsLost: r.packetsLost || 0, jitter: r.jitter || 0, freezeCount: r.freezeCount || 0 };
    }
    this.qualityBase = this.qualityBase || new Map();
    const before = this.qualityBase.get(remote.mid) || { packetsReceived: 0, packetsLost: 0, freezeCount: 0 };
    this.qualityBase.set(remote.mid, now);
    const sub = this.lastStats?.subscriptions?.find((x) => x.track === remote.trackId);
    const sample = {
      packetsReceived: now.packetsReceived - before.packetsReceived,
      packetsLost: now.packetsLost - before.packetsLost,
      jitterMs: now.jitter * 1000,
      freezes: now.freezeCount - before.freezeCount,
      paused: remote.kind === 'video' && !!sub && sub.current === null && sub.available.length > 0,
      switching: !!sub && sub.current !== sub.target,
    };
    const lost = Math.max(0, sample.packetsLost);
    return {
      quality: rateQuality(sample),
      layer: sub?.current ?? null,
      lossPercent: (100 * lost) / Math.max(1, sample.packetsReceived + lost),
      jitterMs: sample.jitterMs,
    };
  }

  /**
   * Send a data message to everyone else in the room.
   * @param {string} payload
   * @param {string} [topic]
   */
  sendData(payload, topic) {
    this.send({ type: 'data', payload, topic });
  }

  /**
   * @param {'audio' | 'video'} kind
   * @param {boolean} muted
   */
  setMuted(kind, muted) {
    const t = this.localTracks[kind];
    if (t) t.enabled = !muted;
    this.send({ type: 'mute', kind, muted });
  }

  /** Leave the room and close both connections. */
  leave() {
    this.leaving = true;
    this.send({ type: 'leave' });
    for (const pc of [this.pubPc, this.subPc]) if (pc) pc.close();
    this.pubPc = this.subPc = null;
    if (this.ws) this.ws.close(1000, 'leave');
  }
}
