// The participant list: everyone in the room with their microphone and camera state,
// phones marked, and who is reconnecting. Names are set as text, never as markup.

const STATES = [
  ['audio_muted', 'mic off'],
  ['video_muted', 'camera off'],
  ['reconnecting', 'reconnecting…'],
];

function entry(p, you) {
  const li = document.createElement('li');
  li.dataset.participant = String(p.id);
  const name = document.createElement('span');
  name.className = 'who';
  name.textContent = `${p.kind === 'sip' ? '☎ ' : ''}${p.name || p.identity}${you ? ' (you)' : ''}`;
  li.append(name);
  const said = [];
  for (const [key, text] of STATES) {
    if (!p[key]) continue;
    const s = document.createElement('span');
    s.className = `state ${key}`;
    s.textContent = text;
    li.append(s);
    said.push(text);
  }
  li.setAttribute('aria-label', [name.textContent, ...said].join(', '));
  return li;
}

/** Render `me` and `others` into `list`; `count` shows how many there are. */
export function renderPeople(list, count, me, others) {
  const rows = [...(me ? [entry(me, true)] : []), ...[...others].sort((a, b) => a.joined_at - b.joined_at || a.id - b.id).map((p) => entry(p, false))];
  list.replaceChildren(...rows);
  count.textContent = String(rows.length);
}
