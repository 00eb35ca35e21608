//! Compact encodings of what the Redis providers store and publish: cached
//! query results and change sets. Decoding never panics: a malformed or
//! foreign value is an error, which callers treat as a miss.

use persist_core::cache::{CacheKey, CachedQuery, ChangeSet};

/// Format byte of an encoded [`CachedQuery`].
const QUERY_FORMAT: u8 = 1;
/// Format byte of a published [`ChangeSet`].
pub(crate) const MSG_CHANGES: u8 = 1;
/// Format byte of a published "forget everything" message.
pub(crate) const MSG_CLEAR: u8 = 2;

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn string(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    /// A count, bounded by what the remaining bytes could hold (each item
    /// takes at least `min_item` bytes), so a forged count cannot make us
    /// allocate much.
    fn count(&mut self, min_item: usize) -> Option<usize> {
        let n = self.u32()? as usize;
        (n.saturating_mul(min_item) <= self.0.len()).then_some(n)
    }
}

/// Encodes a query result: format byte, stamps (`table`, `stamp`), rows.
pub(crate) fn encode_query(q: &CachedQuery) -> Vec<u8> {
    let tables: usize = q.stamps.iter().map(|(t, _)| t.len() + 12).sum();
    let mut out = Vec::with_capacity(1 + 4 + tables + q.rows.len());
    out.push(QUERY_FORMAT);
    out.extend_from_slice(&(q.stamps.len() as u32).to_le_bytes());
    for (table, stamp) in &q.stamps {
        put_str(&mut out, table.as_bytes());
        out.extend_from_slice(&stamp.to_le_bytes());
    }
    out.extend_from_slice(&q.rows);
    out
}

/// Decodes [`encode_query`]; `None` for anything else.
pub(crate) fn decode_query(bytes: &[u8]) -> Option<CachedQuery> {
    let mut r = Reader(bytes);
    if r.u8()? != QUERY_FORMAT {
        return None;
    }
    let n = r.count(12)?;
    let mut stamps = Vec::with_capacity(n);
    for _ in 0..n {
        let table = r.string()?;
        stamps.push((table, r.u64()?));
    }
    Some(CachedQuery {
        stamps,
        rows: r.0.to_vec(),
    })
}

/// Encodes a change set for the invalidation channel.
pub(crate) fn encode_changes(c: &ChangeSet) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 16 * c.keys.len());
    out.push(MSG_CHANGES);
    out.extend_from_slice(&(c.keys.len() as u32).to_le_bytes());
    for k in &c.keys {
        put_str(&mut out, k.region.as_bytes());
        put_str(&mut out, k.key.as_bytes());
    }
    for list in [&c.regions, &c.tables] {
        out.extend_from_slice(&(list.len() as u32).to_le_bytes());
        for s in list {
            put_str(&mut out, s.as_bytes());
        }
    }
    out
}

/// A message read from the invalidation channel.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Message {
    /// A committed transaction's changes.
    Changes(ChangeSet),
    /// Everything cached may be stale: forget it all.
    Clear,
}

/// Decodes a message of the invalidation channel; `None` for anything else.
pub(crate) fn decode_message(bytes: &[u8]) -> Option<Message> {
    let mut r = Reader(bytes);
    match r.u8()? {
        MSG_CLEAR if r.0.is_empty() => Some(Message::Clear),
        MSG_CHANGES => {
            let n = r.count(8)?;
            let mut keys = Vec::with_capacity(n);
            for _ in 0..n {
                let region = r.string()?;
                keys.push(CacheKey {
                    region,
                    key: r.string()?,
                });
            }
            let mut lists = [Vec::new(), Vec::new()];
            for list in &mut lists {
                let n = r.count(4)?;
                list.reserve(n);
                for _ in 0..n {
                    list.push(r.string()?);
                }
            }
            if !r.0.is_empty() {
                return None;
            }
            let [regions, tables] = lists;
            Some(Message::Changes(ChangeSet {
                keys,
                regions,
                tables,
            }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let q = CachedQuery {
            stamps: vec![("users".into(), 7), ("t".into(), u64::MAX)],
            rows: vec![1, 2, 3],
        };
        assert_eq!(decode_query(&encode_query(&q)), Some(q));
        let c = ChangeSet {
            keys: vec![CacheKey {
                region: "users".into(),
                key: "42".into(),
            }],
            regions: vec!["posts".into()],
            tables: vec!["users".into(), "posts".into()],
        };
        assert_eq!(
            decode_message(&encode_changes(&c)),
            Some(Message::Changes(c))
        );
        assert_eq!(decode_message(&[MSG_CLEAR]), Some(Message::Clear));
        for junk in [
            &b""[..],
            b"\x01",
            b"\x01\xff\xff\xff\xff",
            b"hello world",
            b"\x09abc",
            b"\x02x",
        ] {
            assert_eq!(decode_message(junk), None);
            assert_eq!(decode_query(junk), None);
        }
    }
}
