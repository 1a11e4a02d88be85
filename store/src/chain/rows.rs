//! Stored `decisions` rows read back as the writer encoded them (`SELECT` of the insert
//! columns, `FORMAT RowBinary`): each row's bytes are split off the stream by the table's
//! column kinds, hashed whole, and its key and batch read from its own fields.

use crate::profile::SchemaProfile;
use crate::schema::{DECISIONS, Kind};

/// One column's shape in RowBinary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Fixed(usize),
    Str,
    Strings,
    /// An array of fixed-size elements.
    Fixeds(usize),
}

/// How to split `decisions` rows of a profile, and where the fields verification needs are.
#[derive(Debug, Clone)]
pub(crate) struct RowLayout {
    shapes: Vec<Shape>,
    event_id: usize,
    tenant: usize,
    batch_id: usize,
}

/// A row split off the stream: its bytes and the byte ranges of its key and batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SplitRow<'a> {
    pub bytes: &'a [u8],
    pub event_id: &'a str,
    pub tenant: &'a str,
    pub batch_id: &'a str,
}

impl RowLayout {
    pub(crate) fn decisions(profile: SchemaProfile) -> Self {
        let legacy = profile == SchemaProfile::Legacy;
        let mut shapes = Vec::new();
        let (mut event_id, mut tenant, mut batch_id) = (0, 0, 0);
        for c in DECISIONS.cols {
            let shape = match c.kind {
                Kind::Str | Kind::Enum => Shape::Str,
                Kind::Time if legacy => Shape::Fixed(12),
                Kind::Time | Kind::U64 => Shape::Fixed(8),
                Kind::U32 => Shape::Fixed(4),
                Kind::U16 => Shape::Fixed(2),
                Kind::Strings => Shape::Strings,
                Kind::Hash16 => Shape::Fixed(16),
                Kind::U32s => Shape::Fixeds(4),
                Kind::WrittenAt => continue,
            };
            match c.name {
                "event_id" => event_id = shapes.len(),
                "tenant" => tenant = shapes.len(),
                "batch_id" => batch_id = shapes.len(),
                _ => {}
            }
            shapes.push(shape);
        }
        RowLayout { shapes, event_id, tenant, batch_id }
    }

    /// The first row of `buf`, or `None` if `buf` ends before it does. `Err` when a field
    /// that must be text is not UTF-8 (then the stream is not what this layout expects).
    pub(crate) fn split<'a>(&self, buf: &'a [u8]) -> Result<Option<SplitRow<'a>>, String> {
        let mut at = 0usize;
        let mut texts = [(0usize, 0usize); 3];
        for (i, shape) in self.shapes.iter().enumerate() {
            match *shape {
                Shape::Fixed(n) => at += n,
                Shape::Str => {
                    let Some((len, n)) = varint(buf.get(at..).unwrap_or(&[])) else { return Ok(None) };
                    let start = at + n;
                    at = start.saturating_add(len);
                    let slot = [self.event_id, self.tenant, self.batch_id].iter().position(|&k| k == i);
                    if let Some(slot) = slot {
                        texts[slot] = (start, at);
                    }
                }
                Shape::Fixeds(size) => {
                    let Some((count, n)) = varint(buf.get(at..).unwrap_or(&[])) else { return Ok(None) };
                    at = (at + n).saturating_add(count.saturating_mul(size));
                }
                Shape::Strings => {
                    let Some((count, n)) = varint(buf.get(at..).unwrap_or(&[])) else { return Ok(None) };
                    at += n;
                    for _ in 0..count {
                        let Some((len, n)) = varint(buf.get(at..).unwrap_or(&[])) else { return Ok(None) };
                        at = (at + n).saturating_add(len);
                    }
                }
            }
            if at > buf.len() {
                return Ok(None);
            }
        }
        let text = |(a, b): (usize, usize)| {
            std::str::from_utf8(&buf[a..b]).map_err(|_| "a decisions row's key is not UTF-8".to_owned())
        };
        Ok(Some(SplitRow {
            bytes: &buf[..at],
            event_id: text(texts[0])?,
            tenant: text(texts[1])?,
            batch_id: text(texts[2])?,
        }))
    }
}

/// A LEB128 length and how many bytes it took; `None` if `buf` ends inside it.
fn varint(buf: &[u8]) -> Option<(usize, usize)> {
    let mut n: u64 = 0;
    for (i, b) in buf.iter().enumerate().take(10) {
        n |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((usize::try_from(n).unwrap_or(usize::MAX), i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rowbinary::RowEncoder;
    use gatelog_model::{AccessDecision, Source, UnixMillis};

    #[test]
    fn splits_what_the_encoder_wrote_in_both_profiles() {
        for profile in [SchemaProfile::Legacy, SchemaProfile::Modern] {
            let mut enc = RowEncoder::new(profile, 0);
            let mut a = AccessDecision::new("ev-1".into(), UnixMillis(5), "http_requests", Source::Tail);
            a.roles = vec!["x".repeat(300), "y".into()];
            a.tenant = "acme".into();
            enc.decision(&a, "batch-a");
            let one = enc.bytes().len();
            enc.decision(&AccessDecision::default(), "batch-b");
            let all = enc.take();
            let layout = RowLayout::decisions(profile);
            let row = layout.split(&all).unwrap().unwrap();
            assert_eq!((row.bytes.len(), row.event_id, row.tenant, row.batch_id), (one, "ev-1", "acme", "batch-a"));
            let second = layout.split(&all[one..]).unwrap().unwrap();
            assert_eq!(second.batch_id, "batch-b");
            // Every cut inside a row is "need more".
            for cut in 0..one {
                assert!(layout.split(&all[..cut]).unwrap().is_none(), "{profile} cut at {cut}");
            }
        }
    }
}
