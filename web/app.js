// The meeting app, on the client SDK (/client.js, sdk/js): a pre-join screen (preview,
// devices, level meter, join link), then the call: a grid or speaker view that fills the
// window, screen sharing, chat, the participant list, device switch, shortcuts and a
// connection-quality mark on every remote video.
import { SwitchboardClient, tokenRoom } from './client.js';
import { openMedia, openTrack, fillPickers, levelMeter, deviceOf } from './devices.js';
import { layout as place } from './layout.js';
import { createChat, CHAT_TOPIC } from './chat.js';
import { renderPeople } from './people.js';

const $ = (s) => document.querySelector(s);
const params = new URLSearchParams(location.search);
const small = params.get('quality') === 'low';
const state = (window.sb = { client: null, joined: false, errors: [], view: 'grid', speaker: null, stream: null });

$('#room').value = params.get('room') || 'lobby';
$('#name').value = params.get('name') || '';
if (params.get('token')) $('#token').value = params.get('token');

function status(text) {
  $('#status').textContent = text;
}

// A line in the notices corner: at most four at a time, each gone after 8 s.
function notice(text) {
  const n = document.createElement('div');
  n.textContent = `${new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })} ${text}`;
  $('#notices').prepend(n);
  while ($('#notices').children.length > 4) $('#notices').lastChild.remove();
  setTimeout(() => n.remove(), 8000);
}

function nameOf(id) {
  const c = state.client;
  if (c && c.me && c.me.id === id) return 'you';
  return c?.participants.get(id)?.name || `participant ${id}`;
}

// ---- Pre-join: preview, devices, level meter, join link.

let stopMeter = () => {};

async function preview(choice = {}) {
  try {
    const stream = await openMedia({ ...choice, small });
    for (const t of state.stream?.getTracks() || []) t.stop();
    state.stream = stream;
    $('#preview').srcObject = stream;
    stopMeter();
    stopMeter = levelMeter(stream, $('#mic-level'));
    await fillPickers($('#camera-select'), $('#mic-select'), stream);
    $('#join-error').textContent = '';
  } catch (e) {
    $('#join-error').textContent = `No camera or microphone: ${e.message}. Allow them in the browser, or pick other devices.`;
  }
}

function joinLink() {
  const url = new URL(location.pathname, location.origin);
  url.searchParams.set('room', $('#room').value.trim());
  $('#join-link').textContent = url.href;
  return url.href;
}

$('#room').addEventListener('input', joinLink);
$('#camera-select').addEventListener('change', () => preview({ videoId: $('#camera-select').value, audioId: $('#mic-select').value }));
$('#mic-select').addEventListener('change', () => preview({ videoId: $('#camera-select').value, audioId: $('#mic-select').value }));
$('#copy-link').addEventListener('click', async () => {
  const link = joinLink();
  try {
    await navigator.clipboard.writeText(link);
    notice('join link copied');
  } catch {
    getSelection()?.selectAllChildren($('#join-link'));
    notice('select the link and copy it');
  }
});

async function getToken(room, name) {
  const given = $('#token').value.trim();
  if (given) {
    const other = tokenRoom(given);
    if (other !== null && other !== room) throw new Error(`This link's token is for room “${other}”, not “${room}”. Ask for a link to “${room}”, or join “${other}” instead.`);
    return given;
  }
  const r = await fetch(`/api/dev/token?room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}`);
  const body = await r.json();
  if (!r.ok) throw new Error(body.message || 'no token');
  return body.token;
}

// ---- Tiles: one per participant (its camera, or a phone icon), one per screen share.

function tileFor(id, name, kind, source = 'camera') {
  const key = source === 'screen_share' ? `.tile[data-participant="${id}"][data-source="screen_share"]` : `.tile[data-participant="${id}"]:not([data-source="screen_share"])`;
  let tile = document.querySelector(key);
  if (!tile) {
    tile = document.createElement('div');
    tile.className = 'tile';
    tile.dataset.participant = id;
    if (source === 'screen_share') tile.dataset.source = 'screen_share';
    tile.setAttribute('role', 'group');
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    const label = document.createElement('div');
    label.className = 'label';
    const quality = document.createElement('div');
    quality.className = 'quality';
    tile.append(video, label, quality);
    $('#grid').append(tile);
    layout();
  }
  if (name !== undefined) {
    const text = source === 'screen_share' ? `${name} — screen` : name;
    tile.querySelector('.label').textContent = text;
    tile.setAttribute('aria-label', text);
  }
  if (kind !== undefined) tile.classList.toggle('phone', kind === 'sip');
  return tile;
}

function showMute(id, kind, muted) {
  const tile = document.querySelector(`.tile[data-participant="${id}"]:not([data-source])`);
  if (tile) tile.classList.toggle(kind === 'audio' ? 'mic-off' : 'cam-off', muted);
}

// The tile on the stage: the newest screen share; in speaker view, the active speaker
// (or the first other participant).
function featured() {
  const shares = [...document.querySelectorAll('#grid .tile[data-source="screen_share"]')];
  if (shares.length) return shares[shares.length - 1];
  if (state.view !== 'speaker') return null;
  const cams = [...document.querySelectorAll('#grid .tile:not([data-source])')];
  return cams.find((t) => Number(t.dataset.participant) === state.speaker) || cams[0] || null;
}

function layout() {
  const fixed = params.get('tile') ? Number(params.get('tile')) : null;
  place($('main'), $('#grid'), featured(), fixed);
}
window.addEventListener('resize', layout);

function people() {
  const c = state.client;
  if (c) renderPeople($('#people-list'), $('#people-count'), c.me, c.participants.values());
}

// ---- Connection quality: every 2 s, each remote video's mark from the SDK.

const remotes = new Map(); // tile → RemoteTrack (video)
setInterval(async () => {
  const c = state.client;
  if (!c || !state.joined) return;
  for (const [tile, remote] of remotes) {
    if (!tile.isConnected) { remotes.delete(tile); continue; }
    const q = await c.connectionQuality(remote);
    tile.dataset.quality = q.quality;
    const mark = tile.querySelector('.quality');
    mark.textContent = { excellent: '▮▮▮', good: '▮▮▯', poor: '▮▯▯', lost: '▯▯▯' }[q.quality];
    mark.title = `connection ${q.quality}: ${q.lossPercent.toFixed(1)} % loss, ${Math.round(q.jitterMs)} ms jitter${q.layer ? `, layer ${q.layer}` : ''}`;
    mark.setAttribute('aria-label', mark.title);
  }
}, 2000);

// ---- The call.

async function join() {
  const room = $('#room').value.trim();
  const name = $('#name').value.trim() || 'guest';
  $('#join').disabled = true;
  $('#join-error').textContent = '';
  try {
    status('getting camera and microphone…');
    if (!state.stream) await preview();
    if (!state.stream) throw new Error('no camera or microphone');
    const stream = state.stream;
    const token = await getToken(room, name);
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    // ?relay=1: media only through the TURN servers the server hands out.
    const client = new SwitchboardClient(`${proto}://${location.host}/ws`, { iceTransportPolicy: params.get('relay') ? 'relay' : 'all' });
    state.client = client;
    listen(client);
    const joined = await client.connect(token);
    state.joined = true;
    stopMeter();
    $('#local').srcObject = stream;
    $('#prejoin').hidden = true;
    $('main').hidden = false;
    $('#controls').hidden = false;
    layout();
    people();
    status(`in room ${joined.room} as ${joined.participant.name}`);
    // quality=low publishes one 640×360 encoding; simulcast=0 turns simulcast off at any size.
    await client.publish(stream, { simulcast: !small && params.get('simulcast') !== '0' }).catch((e) => notice(`could not publish: ${e.message}`));
    await fillPickers($('#call-camera'), $('#call-mic'), stream);
  } catch (e) {
    const message = e.code === 'unauthorized' ? `The token was refused (${e.message}). Ask for a new link.` : e.message;
    status(`could not join: ${message}`);
    $('#join-error').textContent = message;
    state.errors.push({ code: e.code || 'join', message: e.message });
    $('#join').disabled = false;
  }
}

function listen(client) {
  client.on('participant_joined', (p) => { tileFor(p.id, p.name, p.kind); people(); });
  client.on('participant_left', (e) => {
    for (const t of document.querySelectorAll(`.tile[data-participant="${e.participant}"]`)) t.remove();
    layout();
    people();
  });
  client.on('track', (remote) => {
    const { publisher } = remote;
    const p = client.participants.get(publisher);
    const tile = tileFor(publisher, p?.name ?? nameOf(publisher), p?.kind, remote.source);
    if (remote.trackId !== undefined && remote.kind === 'video') tile.dataset.track = String(remote.trackId);
    client.attach(remote, tile.querySelector('video'));
    if (remote.kind === 'video') remotes.set(tile, remote);
    // A SIP video system shows its picture; a phone without one keeps its icon.
    if (remote.kind === 'video') tile.classList.add('has-video');
    if (remote.source === 'screen_share') {
      notice(`${nameOf(publisher)} is sharing their screen`);
      layout();
    }
    if (p) {
      showMute(publisher, 'audio', p.audio_muted);
      showMute(publisher, 'video', p.video_muted);
    }
  });
  client.on('track_unpublished', (e) => {
    const tile = document.querySelector(`.tile[data-source="screen_share"][data-track="${e.track}"]`);
    if (tile) {
      tile.remove();
      notice(`${nameOf(e.participant)} stopped sharing`);
      layout();
    }
  });
  client.on('mute_changed', (e) => {
    const { participant, kind, muted, by_admin } = e;
    showMute(participant, kind, muted);
    if (client.me && participant === client.me.id) {
      const btn = kind === 'audio' ? $('#mic') : $('#cam');
      btn.classList.toggle('off', muted);
      btn.setAttribute('aria-pressed', String(muted));
      btn.textContent = kind === 'audio' ? (muted ? 'Unmute mic' : 'Mute mic') : (muted ? 'Camera on' : 'Camera off');
    }
    if (by_admin) notice(`an administrator ${muted ? 'muted' : 'unmuted'} ${nameOf(participant)} (${kind})`);
    people();
  });
  client.on('participant_updated', (p) => {
    people();
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
  client.on('room_updated', (e) => notice(`room: ${e.metadata}`));
  client.on('subscription_changed', (e) => {
    const tile = document.querySelector(`.tile[data-track="${e.track}"]`);
    // Shown on the tile (and in its quality mark), not as a notice: a pause can last a
    // moment while the bandwidth estimate ramps up.
    if (tile) tile.classList.toggle('bw-paused', e.paused);
  });
  client.on('active_speaker', (e) => {
    const me = client.me && e.participant === client.me.id;
    for (const t of document.querySelectorAll('.tile')) {
      const id = t.classList.contains('local') ? null : Number(t.dataset.participant);
      t.classList.toggle('speaking', me ? t.classList.contains('local') : id === e.participant && !t.dataset.source);
    }
    const changed = state.speaker !== e.participant;
    state.speaker = e.participant;
    if (changed && state.view === 'speaker' && !me) layout();
  });
  client.on('data', (e) => {
    const { from, topic, payload } = e;
    if (topic === CHAT_TOPIC) return chat.received(from ? nameOf(from) : 'server', payload);
    notice(`${from ? nameOf(from) : 'server'}${topic ? ` [${topic}]` : ''}: ${payload}`);
  });
  client.on('error', (e) => {
    state.errors.push(e);
    status(`error: ${e.message}`);
    if (e.code === 'removed') notice(`removed: ${e.message}`);
  });
  client.on('connection', (e) => {
    status(e.state === 'connected' ? `in room ${$('#room').value} (reconnected)` : `${e.state}…`);
  });
  client.on('local_share', (e) => {
    $('#share').textContent = e.active ? 'Stop sharing' : 'Share screen';
    $('#share').setAttribute('aria-pressed', String(e.active));
    notice(e.active ? 'you are sharing your screen' : 'you stopped sharing');
  });
  client.on('closed', (e) => {
    state.joined = false;
    status(`disconnected (${e.code}${e.reason ? ': ' + e.reason : ''})`);
  });
}

const chat = createChat((payload) => state.client.sendData(payload, CHAT_TOPIC));

// ---- Controls.

// One side panel at a time (devices, people, chat).
function togglePanel(id, open = $(`#${id}`).hidden) {
  for (const other of ['devices', 'people', 'chat']) {
    const show = other === id && open;
    $(`#${other}`).hidden = !show;
    $(`#${other}-toggle`).setAttribute('aria-expanded', String(show));
  }
  if (id === 'chat' && open) chat.opened();
  if (id === 'people' && open) people();
}
for (const id of ['devices', 'people', 'chat']) $(`#${id}-toggle`).addEventListener('click', () => togglePanel(id));

function toggleMute(kind) {
  const btn = kind === 'audio' ? $('#mic') : $('#cam');
  const muted = btn.classList.toggle('off');
  btn.setAttribute('aria-pressed', String(muted));
  state.client.setMuted(kind, muted);
  btn.textContent = kind === 'audio' ? (muted ? 'Unmute mic' : 'Mute mic') : (muted ? 'Camera on' : 'Camera off');
}
$('#mic').addEventListener('click', () => toggleMute('audio'));
$('#cam').addEventListener('click', () => toggleMute('video'));

async function toggleShare() {
  const c = state.client;
  if (c.sharing) return c.stopScreen();
  try {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 15 }, audio: false });
    await c.publishScreen(stream);
  } catch (e) {
    notice(`screen not shared: ${e.message}`);
  }
}
$('#share').addEventListener('click', toggleShare);

function toggleView() {
  state.view = state.view === 'grid' ? 'speaker' : 'grid';
  $('#view').textContent = state.view === 'grid' ? 'Speaker view' : 'Grid view';
  $('#view').setAttribute('aria-pressed', String(state.view === 'speaker'));
  layout();
}
$('#view').addEventListener('click', toggleView);

// A device switch during the call: the new track replaces the old one on the same
// connection (no renegotiation, for anyone).
async function switchDevice(kind, deviceId) {
  const c = state.client;
  const current = kind === 'audio' ? state.stream.getAudioTracks()[0] : state.stream.getVideoTracks()[0];
  if (deviceOf(current) === deviceId) return;
  try {
    const track = await openTrack(kind, deviceId, small);
    const old = await c.replaceTrack(kind, track);
    old?.stop();
    notice(`${kind === 'audio' ? 'microphone' : 'camera'}: ${track.label}`);
  } catch (e) {
    notice(`could not switch ${kind === 'audio' ? 'microphone' : 'camera'}: ${e.message}`);
  }
}
$('#call-camera').addEventListener('change', () => switchDevice('video', $('#call-camera').value));
$('#call-mic').addEventListener('change', () => switchDevice('audio', $('#call-mic').value));

$('#leave').addEventListener('click', () => {
  state.client.leave();
  state.joined = false;
  for (const t of state.stream?.getTracks() || []) t.stop();
  state.stream = null;
  $('#grid').replaceChildren();
  remotes.clear();
  $('#controls').hidden = true;
  $('main').hidden = true;
  togglePanel('chat', false);
  chat.clear();
  $('#prejoin').hidden = false;
  $('#join').disabled = false;
  status('left the room');
  preview();
});

// Keyboard shortcuts during a call (not while typing).
const KEYS = { m: () => toggleMute('audio'), c: () => toggleMute('video'), s: toggleShare, v: toggleView, p: () => togglePanel('people'), t: () => togglePanel('chat'), d: () => togglePanel('devices') };
document.addEventListener('keydown', (e) => {
  if (!state.joined || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.target.closest?.('input, textarea, select, [contenteditable]')) return;
  if (e.key === 'Escape') return togglePanel('chat', false);
  const act = KEYS[e.key.toLowerCase()];
  if (act) {
    e.preventDefault();
    act();
  }
});

$('#join-form').addEventListener('submit', (e) => {
  e.preventDefault();
  join();
});

joinLink();
if (params.get('autojoin') === '1') join();
else preview();
