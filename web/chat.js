// Chat: data messages on the `chat` topic, `{"text": …}`, with names, times and an
// unread badge. Names and texts are always set as text, never as markup. At most
// CHAT_MAX characters, CHAT_RATE messages a second (said in the page, not sent).

export const CHAT_TOPIC = 'chat';
export const CHAT_MAX = 1000;
export const CHAT_RATE = 3;

const $ = (s) => document.querySelector(s);

/** The chat panel; `send(payload)` sends one data message on the chat topic. */
export function createChat(send) {
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
      send(JSON.stringify({ text }));
      this.add('you', text);
      return true;
    },
    opened() {
      this.unread = 0;
      $('#unread').hidden = true;
      $('#chat-input').focus();
    },
    clear() {
      $('#messages').replaceChildren();
      this.unread = 0;
      $('#unread').hidden = true;
    },
  };
  $('#chat-form').addEventListener('submit', (e) => {
    e.preventDefault();
    if (chat.send($('#chat-input').value.trim())) $('#chat-input').value = '';
  });
  return chat;
}
