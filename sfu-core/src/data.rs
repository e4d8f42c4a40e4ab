//! Data channels (SCTP over the publisher connection's DTLS, as str0m runs them): a
//! client opens channels by label (LiveKit's SDKs open `_reliable` and `_lossy`); what
//! arrives on one goes up to the control plane as [`Event::Data`] with its label, and
//! [`Command::SendData`] writes a message on the channel of that label of each participant
//! named. The shard does not read the messages: who may send, to whom, and in what format
//! is the control plane's business.

use str0m::channel::ChannelId;

use crate::api::Event;
use crate::ids::{ParticipantId, PcKind};
use crate::peers::Peers;
use crate::router::Router;

/// The largest data message passed on (larger ones are counted and dropped).
pub const MAX_DATA_MESSAGE: usize = 64 * 1024;
/// Channels one connection may keep open.
const MAX_CHANNELS: usize = 8;

/// A connection's open channels, by label. (Generic over the id only so that tests can
/// make ids: str0m's have no public constructor.)
#[derive(Debug)]
pub(crate) struct Channels<I = ChannelId> {
    open: Vec<(String, I)>,
}

impl<I> Default for Channels<I> {
    fn default() -> Self {
        Self { open: Vec::new() }
    }
}

impl<I: Copy + PartialEq> Channels<I> {
    /// The peer opened `id` as `label`; false when it has too many (then it is not used).
    pub fn opened(&mut self, id: I, label: String) -> bool {
        self.open.retain(|(l, c)| *c != id && *l != label);
        if self.open.len() >= MAX_CHANNELS {
            return false;
        }
        self.open.push((label, id));
        true
    }

    pub fn closed(&mut self, id: I) {
        self.open.retain(|(_, c)| *c != id);
    }

    pub fn label(&self, id: I) -> Option<&str> {
        self.open
            .iter()
            .find(|(_, c)| *c == id)
            .map(|(l, _)| l.as_str())
    }

    pub fn id(&self, label: &str) -> Option<I> {
        self.open.iter().find(|(l, _)| l == label).map(|(_, c)| *c)
    }
}

impl Router {
    /// A channel event of `id`'s publisher connection.
    pub(crate) fn on_channel(&mut self, peers: &mut Peers, id: ParticipantId, ev: str0m::Event) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        match ev {
            str0m::Event::ChannelOpen(c, label) => {
                let kept = p.channels.opened(c, label);
                if !kept {
                    tracing::debug!(participant = %id, "too many data channels: one is ignored");
                }
            }
            str0m::Event::ChannelClose(c) => p.channels.closed(c),
            str0m::Event::ChannelData(d) => {
                let Some(label) = p.channels.label(d.id) else {
                    peers.stats.data_dropped += 1;
                    return;
                };
                if d.data.len() > MAX_DATA_MESSAGE {
                    peers.stats.data_dropped += 1;
                    return;
                }
                peers.stats.data_in += 1;
                let channel = label.to_string();
                peers.emit(Event::Data {
                    participant: id,
                    channel,
                    binary: d.binary,
                    data: d.data,
                });
            }
            _ => {}
        }
    }

    /// Write `data` on the channel `label` of each of `to` (when it has one open).
    pub(crate) fn send_data(
        &mut self,
        peers: &mut Peers,
        to: &[ParticipantId],
        label: &str,
        binary: bool,
        data: &[u8],
    ) {
        for who in to {
            let Some(p) = self.participants.get_mut(who) else {
                continue;
            };
            let (Some(c), Some(pc)) = (p.channels.id(label), p.publisher.as_mut()) else {
                peers.stats.data_dropped += 1;
                continue;
            };
            let accepted = pc.guarded(|rtc| {
                rtc.channel(c)
                    .map(|mut ch| ch.write(binary, data))
                    .unwrap_or(Ok(false))
            });
            match accepted {
                Ok(Ok(true)) => {
                    peers.stats.data_out += 1;
                    peers.written((*who, PcKind::Publisher), pc);
                }
                // Its send buffer is full (a reader that does not keep up) or the channel
                // is gone: this message is dropped for it; the others are not held up.
                _ => peers.stats.data_dropped += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_kept_by_label_and_bounded() {
        let mut c = Channels::<u16>::default();
        let id = |n: u16| n;
        assert!(c.opened(id(1), "_reliable".into()));
        assert!(c.opened(id(3), "_lossy".into()));
        assert_eq!(c.id("_lossy"), Some(id(3)));
        assert_eq!(c.label(id(1)), Some("_reliable"));
        // Reopened under the same label: the new id replaces the old.
        assert!(c.opened(id(5), "_reliable".into()));
        assert_eq!(c.id("_reliable"), Some(id(5)));
        assert_eq!(c.label(id(1)), None);
        c.closed(id(3));
        assert_eq!(c.id("_lossy"), None);
        for n in 10..30 {
            c.opened(id(n), format!("x{n}"));
        }
        assert_eq!(c.open.len(), MAX_CHANNELS);
    }
}
