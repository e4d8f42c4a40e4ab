// The web app, on the client SDK (/client.js, sdk/js): join form, local preview, a grid
// of remote participants that fills the window, mute, leave.
import { SwitchboardClient } from './client.js';

const $ = (s) => document.querySelector(s);
const params = new URLSearchParams(location.search);
const state = (window.sb = { client: null, joined: false, errors: [] });

$('#room').value = params.get('room') || 'lobby';
$('#name').value = params.get('name') || '';

function status(text) {
  $('#status').textContent = text;
}

// A phone (kind `sip`) has no video: its tile shows a phone icon, the video element
// stays for its audio.
function tileFor(id, name, kind) {
  let tile = document.querySelector(`.tile[data-participant="${id}"]`);
  if (!tile) {
    tile = document.createElement('div');
    tile.className = 'tile';
    tile.dataset.participant = id;
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    const label = document.createElement('div');
    label.className = 'label';
    tile.append(video, label);
    $('#grid').append(tile);
    if (params.get('tile')) tile.style.width = `${Number(params.get('tile'))}px`;
    layout();
  }
  if (name !== undefined) tile.querySelector('.label').textContent = name;
  if (kind !== undefined) tile.classList.toggle('phone', kind === 'sip');
  return tile;
}

function notice(text) {
  const n = document.createElement('div');
  n.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $('#notices').prepend(n);
  while ($('#notices').children.length > 8) $('#notices').lastChild.remove();
}

function nameOf(id) {
  const c = state.client;
  if (c && c.me && c.me.id === id) return 'you';
  return c?.participants.get(id)?.name || `participant ${id}`;
}

// The grid fills the space below the controls: as many columns as give the largest
// 16:9 tiles for the number of participants (the SDK reports each video's size, so the
// server sends the layer that fits). ?tile=WIDTH fixes the tile width instead.
function layout() {
  const tiles = [...document.querySelectorAll('#grid .tile')];
  if (!tiles.length || params.get('tile')) return;
  const main = $('main');
  const pad = getComputedStyle(main);
  const gap = 12;
  const W = main.clientWidth - parseFloat(pad.paddingLeft) - parseFloat(pad.paddingRight);
  const H = main.clientHeight - parseFloat(pad.paddingTop) - parseFloat(pad.paddingBottom);
  let best = 0;
  for (let cols = 1; cols <= tiles.length; cols++) {
    const rows = Math.ceil(tiles.length / cols);
    const w = Math.min((W - gap * (cols - 1)) / cols, ((H - gap * (rows - 1)) / rows) * 16 / 9);
    best = Math.max(best, w);
  }
  for (const t of tiles) t.style.width = `${Math.floor(best)}px`;
}
window.addEventListener('resize', layout);

function showMute(id, kind, muted) {
  const tile = document.querySelector(`.tile[data-participant="${id}"]`);
  if (tile) tile.classList.toggle(kind === 'audio' ? 'mic-off' : 'cam-off', muted);
}

async function getToken(room, name) {
  const given = $('#token').value.trim() || params.get('token');
  if (given) return given;
  const r = await fetch(`/api/dev/token?room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}`);
  const body = await r.json();
  if (!r.ok) throw new Error(body.message || 'no token');
  return body.token;
}

async function join() {
  const room = $('#room').value.trim();
  const name = $('#name').value.trim() || 'guest';
  $('#join').disabled = true;
  try {
    status('getting camera and microphone…');
    const small = params.get('quality') === 'low';
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: true,
      video: small ? { width: 640, height: 360, frameRate: 15 } : { width: 1280, height: 720, frameRate: 30 },
    });
    const token = await getToken(room, name);
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    // ?relay=1: media only through the TURN servers the server hands out.
    const client = new SwitchboardClient(`${proto}://${location.host}/ws`, { iceTransportPolicy: params.get('relay') ? 'relay' : 'all' });
    state.client = client;
    client.addEventListener('participant_joined', (e) => tileFor(e.detail.id, e.detail.name, e.detail.kind));
    client.addEventListener('participant_left', (e) => {
      document.querySelector(`.tile[data-participant="${e.detail.participant}"]`)?.remove();
      layout();
    });
    client.addEventListener('track', (e) => {
      const { publisher } = e.detail;
      const p = client.participants.get(publisher);
      const tile = tileFor(publisher, p?.name, p?.kind);
      client.attach(e.detail, tile.querySelector('video'));
      if (p) {
        showMute(publisher, 'audio', p.audio_muted);
        showMute(publisher, 'video', p.video_muted);
      }
    });
    client.addEventListener('mute_changed', (e) => {
      const { participant, kind, muted, by_admin } = e.detail;
      showMute(participant, kind, muted);
      if (client.me && participant === client.me.id) {
        const btn = kind === 'audio' ? $('#mic') : $('#cam');
        btn.classList.toggle('off', muted);
        btn.textContent = kind === 'audio' ? (muted ? 'Unmute mic' : 'Mute mic') : (muted ? 'Camera on' : 'Camera off');
      }
      if (by_admin) notice(`an administrator ${muted ? 'muted' : 'unmuted'} ${nameOf(participant)} (${kind})`);
    });
    client.addEventListener('participant_updated', (e) => {
      const p = e.detail;
      if (p.id !== client.me?.id) {
        const tile = tileFor(p.id, p.metadata ? `${p.name} — ${p.metadata}` : p.name, p.kind);
        // Its signaling socket dropped: it may come back (resume), shown faded meanwhile.
        if (tile.classList.contains('reconnecting') !== !!p.reconnecting) {
          tile.classList.toggle('reconnecting', !!p.reconnecting);
          notice(`${nameOf(p.id)} ${p.reconnecting ? 'is reconnecting' : 'is back'}`);
          return;
        }
      }
      const perms = p.permissions;
      notice(`${nameOf(p.id)}: ${p.metadata ? `“${p.metadata}”, ` : ''}publish ${perms.can_publish ? 'on' : 'off'}, subscribe ${perms.can_subscribe ? 'on' : 'off'}`);
    });
    client.addEventListener('room_updated', (e) => notice(`room: ${e.detail.metadata}`));
    client.addEventListener('subscription_changed', (e) => {
      // Which participant's track: from the subscriber offers' track map.
      const t = [...client.tracksByMid.values()].find((x) => x.track === e.detail.track);
      const tile = t && document.querySelector(`.tile[data-participant="${t.publisher}"]`);
      if (tile) tile.classList.toggle('bw-paused', e.detail.paused);
      if (e.detail.paused) notice(`video of ${t ? nameOf(t.publisher) : 'a participant'} paused: not enough bandwidth`);
    });
    client.addEventListener('active_speaker', (e) => {
      const me = client.me && e.detail.participant === client.me.id;
      for (const t of document.querySelectorAll('.tile')) {
        const id = t.classList.contains('local') ? (me ? 'me' : null) : Number(t.dataset.participant);
        t.classList.toggle('speaking', me ? t.classList.contains('local') : id === e.detail.participant);
      }
      state.speaker = e.detail.participant;
    });
    client.addEventListener('data', (e) => {
      const { from, topic, payload } = e.detail;
      if (topic === CHAT_TOPIC) return chat.received(from ? nameOf(from) : 'server', payload);
      notice(`${from ? nameOf(from) : 'server'}${topic ? ` [${topic}]` : ''}: ${payload}`);
    });
    client.addEventListener('error', (e) => {
      state.errors.push(e.detail);
      status(`error: ${e.detail.message}`);
      if (e.detail.code === 'removed') notice(`removed: ${e.detail.message}`);
    });
    client.addEventListener('connection', (e) => {
      const s = e.detail.state;
      status(s === 'connected' ? `in room ${params.get('room') || $('#room').value} (reconnected)` : `${s}…`);
    });
    client.addEventListener('closed', (e) => {
      state.joined = false;
      status(`disconnected (${e.detail.code}${e.detail.reason ? ': ' + e.detail.reason : ''})`);
    });
    const joined = await client.connect(token);
    state.joined = true;
    $('#local').srcObject = stream;
    $('#join-form').hidden = true;
    $('#controls').hidden = false;
    layout();
    status(`in room ${joined.room} as ${joined.participant.name}`);
    // quality=low publishes one 640×360 encoding; simulcast=0 turns simulcast off at any size.
    await client.publish(stream, { simulcast: !small && params.get('simulcast') !== '0' });
  } catch (e) {
    status(`could not join: ${e.message}`);
    state.errors.push({ code: 'join', message: e.message });
    $('#join').disabled = false;
  }
}

// Chat: data messages on the `chat` topic, `{"text": …}`. Names and texts are always
// set as text, never as markup. At most CHAT_MAX characters, CHAT_RATE messages a second.
const CHAT_TOPIC = 'chat';
const CHAT_MAX = 1000;
const CHAT_RATE = 3;
const chat = {
  sent: [],
  unread: 0,
  add(who, text, at = new Date()) {
    const li = document.createElement('li');
    const name = document.createElement('span');
    name.className = 'who';
    name.textContent = who;
    const time = document.createElement('time');
    time.dateTime = at.toISOString();
    time.textContent = at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    const body = document.createElement('div');
    body.className = 'text';
    body.textContent = text;
    li.append(name, time, body);
    $('#messages').append(li);
    li.scrollIntoView({ block: 'end' });
  },
  received(who, payload) {
    let text;
    try { text = JSON.parse(payload).text; } catch { return; }
    if (typeof text !== 'string' || !text) return;
    this.add(who, text.slice(0, CHAT_MAX));
    if ($('#chat').hidden) {
      this.unread++;
      $('#unread').textContent = String(this.unread);
      $('#unread').hidden = false;
    }
  },
  // Why `text` cannot be sent now, or null.
  refusal(text) {
    if (!text) return 'Type a message first.';
    if (text.length > CHAT_MAX) return `Messages are at most ${CHAT_MAX} characters (this one has ${text.length}).`;
    const now = Date.now();
    this.sent = this.sent.filter((t) => now - t < 1000);
    if (this.sent.length >= CHAT_RATE) return `At most ${CHAT_RATE} messages a second: wait a moment.`;
    return null;
  },
  send(text) {
    const why = this.refusal(text);
    $('#chat-error').textContent = why || '';
    if (why) return false;
    this.sent.push(Date.now());
    state.client.sendData(JSON.stringify({ text }), CHAT_TOPIC);
    this.add('you', text);
    return true;
  },
  toggle(open = $('#chat').hidden) {
    $('#chat').hidden = !open;
    $('#chat-toggle').setAttribute('aria-expanded', String(open));
    if (open) {
      this.unread = 0;
      $('#unread').hidden = true;
      $('#chat-input').focus();
    }
  },
};

$('#chat-form').addEventListener('submit', (e) => {
  e.preventDefault();
  if (chat.send($('#chat-input').value.trim())) $('#chat-input').value = '';
});
$('#chat-toggle').addEventListener('click', () => chat.toggle());

$('#join-form').addEventListener('submit', (e) => {
  e.preventDefault();
  join();
});

$('#mic').addEventListener('click', () => {
  const muted = $('#mic').classList.toggle('off');
  state.client.setMuted('audio', muted);
  $('#mic').textContent = muted ? 'Unmute mic' : 'Mute mic';
});

$('#cam').addEventListener('click', () => {
  const muted = $('#cam').classList.toggle('off');
  state.client.setMuted('video', muted);
  $('#cam').textContent = muted ? 'Camera on' : 'Camera off';
});

$('#leave').addEventListener('click', () => {
  state.client.leave();
  state.joined = false;
  for (const t of $('#local').srcObject?.getTracks() || []) t.stop();
  $('#grid').replaceChildren();
  $('#controls').hidden = true;
  chat.toggle(false);
  $('#messages').replaceChildren();
  $('#join-form').hidden = false;
  $('#join').disabled = false;
  status('left the room');
});

if (params.get('autojoin') === '1') join();
