//! The row codec: how a cached row and a cached query result are written
//! as bytes, tagged with the entity's column layout.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use uuid::Uuid;

use crate::error::{BoxDynError, Error, Result, msg};
use crate::model::entity::{Entity, EntityMeta};
use crate::model::row::{Capture, Captured};
use crate::model::value::{RowReader, SqlType};

/// Format version of encoded rows; a value of another version is a miss.
/// Version 2 added the layout fingerprint.
const FORMAT: u8 = 2;

/// FNV-1a (64-bit): stable across builds, platforms and Rust versions,
/// which `std`'s hashers are not.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

const fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    h
}

/// The fingerprint of an entity's column layout: its table, and each
/// column's name, SQL type and nullability, in order. A cached row is
/// decoded only by an entity of the same layout, so a deploy that reorders,
/// renames or retypes columns never reads another layout's rows from a
/// shared cache into the wrong fields.
pub const fn layout_fingerprint(meta: &EntityMeta) -> u64 {
    // Lengths and separators keep ("ab", "c") apart from ("a", "bc").
    let mut h = fnv(FNV_OFFSET, &(meta.table.len() as u64).to_le_bytes());
    h = fnv(h, meta.table.as_bytes());
    let mut i = 0;
    while i < meta.columns.len() {
        let c = &meta.columns[i];
        h = fnv(h, &(c.name.len() as u64).to_le_bytes());
        h = fnv(h, c.name.as_bytes());
        h = fnv(h, &[sql_type_tag(c.sql_type), c.nullable as u8]);
        i += 1;
    }
    h
}

/// [`layout_fingerprint`] of `E`, computed once, at compile time.
struct Layout<E>(std::marker::PhantomData<E>);

impl<E: Entity> Layout<E> {
    const FINGERPRINT: u64 = layout_fingerprint(E::META);
}

/// The format byte and `E`'s layout fingerprint, which begin every encoded
/// row and query result.
fn put_header<E: Entity>(out: &mut Vec<u8>) {
    out.push(FORMAT);
    out.extend_from_slice(&Layout::<E>::FINGERPRINT.to_le_bytes());
}

/// Checks the header [`put_header`] wrote: another format or another
/// layout is an error (a miss).
fn check_header<E: Entity>(r: &mut Reader<'_>) -> Result<(), BoxDynError> {
    if r.u8()? != FORMAT {
        return Err(msg("unknown format"));
    }
    if u64::from_le_bytes(r.arr()?) != Layout::<E>::FINGERPRINT {
        return Err(msg(format!(
            "encoded for another column layout of {}",
            E::META.table
        )));
    }
    Ok(())
}

/// Encodes a row compactly: a header (format, the entity's
/// [layout fingerprint](layout_fingerprint)), then each column's value with
/// a one-byte tag.
pub fn encode_row<E: Entity>(row: &E) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(24 + 8 * E::META.columns.len());
    put_header::<E>(&mut out);
    encode_body(row, &mut out)?;
    Ok(out)
}

/// Appends a row's column count and values.
fn encode_body<E: Entity>(row: &E, out: &mut Vec<u8>) -> Result<()> {
    let mut c = Capture::default();
    for i in 0..E::META.columns.len() {
        row.bind_column(i, &mut c)?;
    }
    encode_captured(&c, out);
    Ok(())
}

/// Appends captured values: their count, then each value.
fn encode_captured(c: &Capture, out: &mut Vec<u8>) {
    out.extend_from_slice(&(c.0.len() as u32).to_le_bytes());
    for v in &c.0 {
        encode_value(v, out);
    }
}

/// Decodes a row encoded by [`encode_row`]. A value that is malformed, of
/// another format, or of another column layout (another entity
/// definition) is an error (callers treat it as a miss).
pub fn decode_row<E: Entity>(bytes: &[u8]) -> Result<E> {
    let mut r = Reader { buf: bytes };
    check_header::<E>(&mut r).map_err(|e| Error::decode("cached row", e))?;
    decode_body(r.buf)
}

/// Decodes a row's column count and values.
fn decode_body<E: Entity>(bytes: &[u8]) -> Result<E> {
    let values = decode_values(bytes).map_err(|e| Error::decode("cached row", e))?;
    if values.len() != E::META.columns.len() {
        return Err(Error::decode("cached row", msg("column count differs")));
    }
    E::decode_row(&CachedRow(values), 0)
}

/// Encodes several rows (a query result), under one header.
pub fn encode_rows<E: Entity>(rows: &[E]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    put_header::<E>(&mut out);
    out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
    let mut one = Vec::new();
    for r in rows {
        one.clear();
        encode_body(r, &mut one)?;
        put_part(&mut out, &one);
    }
    Ok(out)
}

/// Decodes rows encoded by [`encode_rows`] (an error, like
/// [`decode_row`]'s, for another format or column layout).
pub fn decode_rows<E: Entity>(bytes: &[u8]) -> Result<Vec<E>> {
    let bad = |e| Error::decode("cached rows", e);
    let mut r = Reader { buf: bytes };
    check_header::<E>(&mut r).map_err(bad)?;
    parts(&mut r)
        .map_err(bad)?
        .into_iter()
        .map(decode_body)
        .collect()
}

/// Appends one length-prefixed part.
fn put_part(out: &mut Vec<u8>, part: &[u8]) {
    out.extend_from_slice(&(part.len() as u32).to_le_bytes());
    out.extend_from_slice(part);
}

/// Reads the parts [`put_part`] wrote after the header: a count, then each
/// part, and nothing after.
fn parts<'a>(r: &mut Reader<'a>) -> Result<Vec<&'a [u8]>, BoxDynError> {
    let n = r.u32()? as usize;
    let mut out = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        let len = r.u32()? as usize;
        out.push(r.take(len)?);
    }
    if !r.buf.is_empty() {
        return Err(msg("trailing bytes"));
    }
    Ok(out)
}

/// Encodes the rows of a projection over `E` (each row's values as
/// captured from its Rust value), under `E`'s header.
pub(crate) fn encode_projected<E: Entity>(
    rows: impl ExactSizeIterator<Item = Result<Capture>>,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    put_header::<E>(&mut out);
    out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
    let mut one = Vec::new();
    for c in rows {
        one.clear();
        encode_captured(&c?, &mut one);
        put_part(&mut out, &one);
    }
    Ok(out)
}

/// Decodes rows encoded by [`encode_projected`], each with `f` (which reads
/// it as it reads a database row).
pub(crate) fn decode_projected<E: Entity, T>(
    bytes: &[u8],
    mut f: impl FnMut(&CachedRow) -> Result<T>,
) -> Result<Vec<T>> {
    let bad = |e| Error::decode("cached projection", e);
    let mut r = Reader { buf: bytes };
    check_header::<E>(&mut r).map_err(bad)?;
    parts(&mut r)
        .map_err(bad)?
        .into_iter()
        .map(|p| f(&CachedRow(decode_values(p).map_err(bad)?)))
        .collect()
}

/// Encodes the pairs of a join of `L` with `R` (`None`: no right row),
/// under both entities' headers.
pub(crate) fn encode_pairs<'a, L: Entity, R: Entity>(
    rows: impl ExactSizeIterator<Item = (&'a L, Option<&'a R>)>,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    put_header::<L>(&mut out);
    put_header::<R>(&mut out);
    out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
    let mut one = Vec::new();
    for (l, r) in rows {
        one.clear();
        let mut left = Vec::new();
        encode_body(l, &mut left)?;
        put_part(&mut one, &left);
        if let Some(r) = r {
            encode_body(r, &mut one)?;
        }
        put_part(&mut out, &one);
    }
    Ok(out)
}

/// Decodes pairs encoded by [`encode_pairs`].
pub(crate) fn decode_pairs<L: Entity, R: Entity>(bytes: &[u8]) -> Result<Vec<(L, Option<R>)>> {
    let bad = |e| Error::decode("cached join", e);
    let mut r = Reader { buf: bytes };
    check_header::<L>(&mut r).map_err(bad)?;
    check_header::<R>(&mut r).map_err(bad)?;
    let mut out = Vec::new();
    for p in parts(&mut r).map_err(bad)? {
        let mut pr = Reader { buf: p };
        let left = pr.bytes().map_err(bad)?;
        let right = if pr.buf.is_empty() {
            None
        } else {
            Some(decode_body::<R>(pr.buf)?)
        };
        out.push((decode_body::<L>(left)?, right));
    }
    Ok(out)
}

const fn sql_type_tag(t: SqlType) -> u8 {
    match t {
        SqlType::Bool => 0,
        SqlType::SmallInt => 1,
        SqlType::Int => 2,
        SqlType::BigInt => 3,
        SqlType::Real => 4,
        SqlType::Double => 5,
        SqlType::Text => 6,
        SqlType::Blob => 7,
        SqlType::Json => 8,
        SqlType::TimestampTz => 9,
        SqlType::Timestamp => 10,
        SqlType::Date => 11,
        SqlType::Time => 12,
        SqlType::Uuid => 13,
        #[cfg(feature = "decimal")]
        SqlType::Decimal => 14,
    }
}

fn sql_type_of(tag: u8) -> Option<SqlType> {
    Some(match tag {
        0 => SqlType::Bool,
        1 => SqlType::SmallInt,
        2 => SqlType::Int,
        3 => SqlType::BigInt,
        4 => SqlType::Real,
        5 => SqlType::Double,
        6 => SqlType::Text,
        7 => SqlType::Blob,
        8 => SqlType::Json,
        9 => SqlType::TimestampTz,
        10 => SqlType::Timestamp,
        11 => SqlType::Date,
        12 => SqlType::Time,
        13 => SqlType::Uuid,
        #[cfg(feature = "decimal")]
        14 => SqlType::Decimal,
        _ => return None,
    })
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn encode_value(v: &Captured, out: &mut Vec<u8>) {
    match v {
        Captured::Null(t) => {
            out.push(0);
            out.push(sql_type_tag(*t));
        }
        Captured::Bool(b) => {
            out.push(1);
            out.push(u8::from(*b));
        }
        Captured::I16(x) => {
            out.push(2);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Captured::I32(x) => {
            out.push(3);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Captured::I64(x) => {
            out.push(4);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Captured::F32(bits) => {
            out.push(5);
            out.extend_from_slice(&bits.to_le_bytes());
        }
        Captured::F64(bits) => {
            out.push(6);
            out.extend_from_slice(&bits.to_le_bytes());
        }
        Captured::Str(s) => {
            out.push(7);
            put_bytes(out, s.as_bytes());
        }
        Captured::Bytes(b) => {
            out.push(8);
            put_bytes(out, b);
        }
        Captured::Json(j) => {
            out.push(9);
            put_bytes(out, j.to_string().as_bytes());
        }
        Captured::TimestampTz(t) => {
            out.push(10);
            out.extend_from_slice(&t.timestamp_micros().to_le_bytes());
        }
        Captured::Timestamp(t) => {
            out.push(11);
            out.extend_from_slice(&t.and_utc().timestamp_micros().to_le_bytes());
        }
        Captured::Date(d) => {
            out.push(12);
            out.extend_from_slice(&d.num_days_from_ce().to_le_bytes());
        }
        Captured::Time(t) => {
            out.push(13);
            let micros = i64::from(t.num_seconds_from_midnight()) * 1_000_000
                + i64::from(t.nanosecond() / 1_000);
            out.extend_from_slice(&micros.to_le_bytes());
        }
        Captured::Uuid(u) => {
            out.push(14);
            out.extend_from_slice(u.as_bytes());
        }
        #[cfg(feature = "decimal")]
        Captured::Decimal(d) => {
            out.push(15);
            out.extend_from_slice(&d.serialize());
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BoxDynError> {
        if self.buf.len() < n {
            return Err(msg("truncated"));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, BoxDynError> {
        Ok(self.take(1)?[0])
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], BoxDynError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, BoxDynError> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn i64(&mut self) -> Result<i64, BoxDynError> {
        Ok(i64::from_le_bytes(self.arr()?))
    }
    fn bytes(&mut self) -> Result<&'a [u8], BoxDynError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

fn decode_values(bytes: &[u8]) -> Result<Vec<Captured>, BoxDynError> {
    let mut r = Reader { buf: bytes };
    let n = r.u32()? as usize;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let v = match r.u8()? {
            0 => Captured::Null(sql_type_of(r.u8()?).ok_or_else(|| msg("bad type tag"))?),
            1 => Captured::Bool(r.u8()? != 0),
            2 => Captured::I16(i16::from_le_bytes(r.arr()?)),
            3 => Captured::I32(i32::from_le_bytes(r.arr()?)),
            4 => Captured::I64(r.i64()?),
            5 => Captured::F32(u32::from_le_bytes(r.arr()?)),
            6 => Captured::F64(u64::from_le_bytes(r.arr()?)),
            7 => Captured::Str(String::from_utf8(r.bytes()?.to_vec())?),
            8 => Captured::Bytes(r.bytes()?.to_vec()),
            9 => Captured::Json(serde_json::from_slice(r.bytes()?)?),
            10 => Captured::TimestampTz(
                DateTime::from_timestamp_micros(r.i64()?).ok_or_else(|| msg("bad timestamp"))?,
            ),
            11 => Captured::Timestamp(
                DateTime::from_timestamp_micros(r.i64()?)
                    .ok_or_else(|| msg("bad timestamp"))?
                    .naive_utc(),
            ),
            12 => Captured::Date(
                NaiveDate::from_num_days_from_ce_opt(i32::from_le_bytes(r.arr()?))
                    .ok_or_else(|| msg("bad date"))?,
            ),
            13 => {
                let micros = r.i64()?;
                let secs =
                    u32::try_from(micros.div_euclid(1_000_000)).map_err(|_| msg("bad time"))?;
                let nanos = u32::try_from(micros.rem_euclid(1_000_000) * 1_000)
                    .map_err(|_| msg("bad time"))?;
                Captured::Time(
                    NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos)
                        .ok_or_else(|| msg("bad time"))?,
                )
            }
            14 => Captured::Uuid(Uuid::from_bytes(r.arr()?)),
            #[cfg(feature = "decimal")]
            15 => Captured::Decimal(rust_decimal::Decimal::deserialize(r.arr()?)),
            _ => return Err(msg("bad value tag")),
        };
        out.push(v);
    }
    if !r.buf.is_empty() {
        return Err(msg("trailing bytes"));
    }
    Ok(out)
}

/// A decoded cached row, read through [`RowReader`] like a database row.
pub(crate) struct CachedRow(Vec<Captured>);

fn wrong(i: usize) -> BoxDynError {
    msg(format!("cached column #{i} has another type"))
}

macro_rules! cached_reads {
    ($($m:ident -> $t:ty { $($pat:pat => $val:expr),+ }),* $(,)?) => {$(
        fn $m(&self, i: usize) -> Result<Option<$t>, BoxDynError> {
            match self.0.get(i) {
                Some(Captured::Null(_)) => Ok(None),
                $(Some($pat) => Ok(Some($val)),)+
                _ => Err(wrong(i)),
            }
        }
    )*};
}

impl RowReader for CachedRow {
    cached_reads!(
        bool -> bool { Captured::Bool(b) => *b },
        i16 -> i16 { Captured::I16(x) => *x },
        i32 -> i32 { Captured::I32(x) => *x },
        i64 -> i64 { Captured::I64(x) => *x },
        f32 -> f32 { Captured::F32(b) => f32::from_bits(*b) },
        f64 -> f64 { Captured::F64(b) => f64::from_bits(*b) },
        string -> String { Captured::Str(s) => s.clone() },
        bytes -> Vec<u8> { Captured::Bytes(b) => b.clone() },
        json -> serde_json::Value { Captured::Json(j) => j.clone() },
        timestamptz -> DateTime<Utc> { Captured::TimestampTz(t) => *t },
        timestamp -> NaiveDateTime { Captured::Timestamp(t) => *t },
        date -> NaiveDate { Captured::Date(d) => *d },
        time -> NaiveTime { Captured::Time(t) => *t },
        uuid -> Uuid { Captured::Uuid(u) => *u },
    );
    #[cfg(feature = "decimal")]
    cached_reads!(decimal -> rust_decimal::Decimal { Captured::Decimal(d) => *d });
}

#[cfg(test)]
mod tests {
    use super::layout_fingerprint;
    use crate::model::entity::{ColumnMeta, EntityMeta};
    use crate::model::value::SqlType;

    const fn col(name: &'static str, sql_type: SqlType, nullable: bool) -> ColumnMeta {
        ColumnMeta {
            name,
            field: name,
            sql_type,
            nullable,
            primary_key: false,
            unique: false,
            index: false,
            unique_live: false,
            default: None,
            references: None,
        }
    }

    fn meta(table: &'static str, columns: &'static [ColumnMeta]) -> EntityMeta {
        EntityMeta {
            name: "T",
            table,
            columns,
            primary_key: &[0],
            auto_increment: None,
            version: None,
            created_at: None,
            updated_at: None,
            relations: &[],
            cache_ttl: None,
            soft_delete: None,
            audit: false,
            hooks: false,
        }
    }

    static AB: [ColumnMeta; 2] = [
        col("a", SqlType::Text, false),
        col("b", SqlType::Text, false),
    ];
    static BA: [ColumnMeta; 2] = [
        col("b", SqlType::Text, false),
        col("a", SqlType::Text, false),
    ];
    static AB_NULL: [ColumnMeta; 2] = [
        col("a", SqlType::Text, false),
        col("b", SqlType::Text, true),
    ];
    static AB_INT: [ColumnMeta; 2] = [
        col("a", SqlType::Text, false),
        col("b", SqlType::Int, false),
    ];
    static A_B: [ColumnMeta; 1] = [col("ab", SqlType::Text, false)];
    static A: [ColumnMeta; 1] = [col("a", SqlType::Text, false)];

    #[test]
    fn fingerprints_tell_layouts_apart_and_are_stable() {
        let ab = layout_fingerprint(&meta("t", &AB));
        assert_eq!(ab, layout_fingerprint(&meta("t", &AB)));
        for other in [
            meta("t", &BA),
            meta("t", &AB_NULL),
            meta("t", &AB_INT),
            meta("u", &AB),
            meta("t", &A),
        ] {
            assert_ne!(ab, layout_fingerprint(&other), "{other:?}");
        }
        // Names run together differently are different layouts.
        assert_ne!(
            layout_fingerprint(&meta("ta", &A)),
            layout_fingerprint(&meta("t", &A_B))
        );
        // Shared caches outlive builds: the value must never drift.
        assert_eq!(ab, 0x5853_1a97_d42d_2d21, "{ab:#x}");
    }
}
