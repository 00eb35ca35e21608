//! Mapping between Rust field types and column values.
//!
//! [`Field`] is implemented for every type persist stores. Binding and
//! decoding go through the small [`Binder`] and [`RowReader`] interfaces,
//! which each backend implements once, so generated code is the same for
//! every backend and no `Vec` of dynamic values is built per statement.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
#[cfg(feature = "decimal")]
use rust_decimal::Decimal;
use uuid::Uuid;

pub use sea_query::Value;

use crate::error::{BoxDynError, msg};

/// The storage class of a column; the schema builder maps it to each
/// backend's type (see the README's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SqlType {
    /// `boolean` (MySQL `bool`, SQLite `boolean`).
    Bool,
    /// `smallint`.
    SmallInt,
    /// `integer`.
    Int,
    /// `bigint`.
    BigInt,
    /// `real` / `float`.
    Real,
    /// `double precision` / `double`.
    Double,
    /// Text (`text`; MySQL `varchar(255)` when unique or indexed, else `text`).
    Text,
    /// Bytes (`bytea`, `blob`).
    Blob,
    /// JSON (`jsonb`, MySQL `json`, SQLite text).
    Json,
    /// A UTC timestamp (`timestamptz`, MySQL `datetime(6)`, SQLite text).
    TimestampTz,
    /// A timestamp without zone (`timestamp`, MySQL `datetime(6)`, SQLite text).
    Timestamp,
    /// A date.
    Date,
    /// A time of day (`time`, MySQL `time(6)`).
    Time,
    /// A UUID (`uuid`, MySQL `binary(16)`, SQLite blob).
    Uuid,
    /// An exact decimal (`numeric`, MySQL `decimal(65, 30)`, SQLite text);
    /// with the `decimal` feature.
    #[cfg(feature = "decimal")]
    #[cfg_attr(docsrs, doc(cfg(feature = "decimal")))]
    Decimal,
}

/// Receives field values for one statement's bind parameters, in order.
///
/// Implemented by persist for each backend's argument buffer.
pub trait Binder {
    /// Binds a typed `NULL`.
    fn null(&mut self, ty: SqlType) -> Result<(), BoxDynError>;
    /// Binds a bool.
    fn bool(&mut self, v: bool) -> Result<(), BoxDynError>;
    /// Binds a 16-bit integer.
    fn i16(&mut self, v: i16) -> Result<(), BoxDynError>;
    /// Binds a 32-bit integer.
    fn i32(&mut self, v: i32) -> Result<(), BoxDynError>;
    /// Binds a 64-bit integer.
    fn i64(&mut self, v: i64) -> Result<(), BoxDynError>;
    /// Binds a 32-bit float.
    fn f32(&mut self, v: f32) -> Result<(), BoxDynError>;
    /// Binds a 64-bit float.
    fn f64(&mut self, v: f64) -> Result<(), BoxDynError>;
    /// Binds text.
    fn str(&mut self, v: &str) -> Result<(), BoxDynError>;
    /// Binds bytes.
    fn bytes(&mut self, v: &[u8]) -> Result<(), BoxDynError>;
    /// Binds a JSON document.
    fn json(&mut self, v: &serde_json::Value) -> Result<(), BoxDynError>;
    /// Binds a UTC timestamp (already truncated to microseconds).
    fn timestamptz(&mut self, v: DateTime<Utc>) -> Result<(), BoxDynError>;
    /// Binds a timestamp without zone (already truncated to microseconds).
    fn timestamp(&mut self, v: NaiveDateTime) -> Result<(), BoxDynError>;
    /// Binds a date.
    fn date(&mut self, v: NaiveDate) -> Result<(), BoxDynError>;
    /// Binds a time of day (already truncated to microseconds).
    fn time(&mut self, v: NaiveTime) -> Result<(), BoxDynError>;
    /// Binds a UUID.
    fn uuid(&mut self, v: Uuid) -> Result<(), BoxDynError>;
    /// Binds an exact decimal.
    #[cfg(feature = "decimal")]
    #[cfg_attr(docsrs, doc(cfg(feature = "decimal")))]
    fn decimal(&mut self, v: Decimal) -> Result<(), BoxDynError>;
}

/// Reads column values of one result row by index.
///
/// Implemented by persist for each backend's row type. Each getter returns
/// `None` for SQL `NULL`.
pub trait RowReader {
    /// Reads a bool.
    fn bool(&self, i: usize) -> Result<Option<bool>, BoxDynError>;
    /// Reads a 16-bit integer.
    fn i16(&self, i: usize) -> Result<Option<i16>, BoxDynError>;
    /// Reads a 32-bit integer.
    fn i32(&self, i: usize) -> Result<Option<i32>, BoxDynError>;
    /// Reads a 64-bit integer.
    fn i64(&self, i: usize) -> Result<Option<i64>, BoxDynError>;
    /// Reads a 32-bit float.
    fn f32(&self, i: usize) -> Result<Option<f32>, BoxDynError>;
    /// Reads a 64-bit float.
    fn f64(&self, i: usize) -> Result<Option<f64>, BoxDynError>;
    /// Reads text.
    fn string(&self, i: usize) -> Result<Option<String>, BoxDynError>;
    /// Reads bytes.
    fn bytes(&self, i: usize) -> Result<Option<Vec<u8>>, BoxDynError>;
    /// Reads a JSON document.
    fn json(&self, i: usize) -> Result<Option<serde_json::Value>, BoxDynError>;
    /// Reads a UTC timestamp.
    fn timestamptz(&self, i: usize) -> Result<Option<DateTime<Utc>>, BoxDynError>;
    /// Reads a timestamp without zone.
    fn timestamp(&self, i: usize) -> Result<Option<NaiveDateTime>, BoxDynError>;
    /// Reads a date.
    fn date(&self, i: usize) -> Result<Option<NaiveDate>, BoxDynError>;
    /// Reads a time of day.
    fn time(&self, i: usize) -> Result<Option<NaiveTime>, BoxDynError>;
    /// Reads a UUID.
    fn uuid(&self, i: usize) -> Result<Option<Uuid>, BoxDynError>;
    /// Reads an exact decimal.
    #[cfg(feature = "decimal")]
    #[cfg_attr(docsrs, doc(cfg(feature = "decimal")))]
    fn decimal(&self, i: usize) -> Result<Option<Decimal>, BoxDynError>;
}

/// A Rust type stored in one column.
///
/// Implemented for the supported scalar types and `Option` of them; unit-only
/// enums get it from `#[derive(DbEnum)]`, single-field newtypes from
/// `#[derive(Field)]`. A type without it is a compile error at the field
/// that uses it.
///
/// Everything an implementation names is in this module: [`SqlType`],
/// [`Binder`], [`RowReader`], [`Value`] and [`BoxDynError`], so a hand-written
/// impl needs no other dependency. The usual one stores a type as one that
/// is already a `Field` and delegates:
///
/// ```
/// use persist_core::model::{Binder, BoxDynError, Field, RowReader, SqlType, Value};
///
/// /// A temperature, stored as `double precision`.
/// #[derive(Clone, Copy, Debug, PartialEq)]
/// pub struct Celsius(f64);
///
/// impl Field for Celsius {
///     const SQL_TYPE: SqlType = SqlType::Double;
///     fn bind<B: Binder>(&self, b: &mut B) -> Result<(), BoxDynError> {
///         b.f64(self.0)
///     }
///     fn decode_opt<R: RowReader>(r: &R, i: usize) -> Result<Option<Self>, BoxDynError> {
///         Ok(r.f64(i)?.map(Celsius))
///     }
///     fn to_value(&self) -> Result<Value, BoxDynError> {
///         self.0.to_value()
///     }
/// }
/// # assert_eq!(Celsius(21.5).to_value().unwrap(), Value::Double(Some(21.5)));
/// ```
///
/// `#[derive(Field)]` writes this impl for a single-field newtype; more in
/// `docs/reference/types.md`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in a column by persist",
    label = "unsupported field type",
    note = "supported: integers, f32/f64, bool, String, Vec<u8>, chrono date/time types, uuid::Uuid, serde_json::Value, rust_decimal::Decimal (feature `decimal`), Option<T> of those, #[derive(DbEnum)] enums, #[derive(Field)] newtypes; use #[persist(json)] for serde types"
)]
pub trait Field: Sized + Send + Sync + 'static {
    /// The column's storage class.
    const SQL_TYPE: SqlType;
    /// Whether the column accepts `NULL` (true for `Option<T>`).
    const NULLABLE: bool = false;

    /// Binds this value as the next parameter.
    fn bind<B: Binder>(&self, b: &mut B) -> Result<(), BoxDynError>;

    /// Decodes column `i` of a row; `None` means SQL `NULL`.
    fn decode_opt<R: RowReader>(r: &R, i: usize) -> Result<Option<Self>, BoxDynError>;

    /// Decodes column `i` of a row.
    fn decode<R: RowReader>(r: &R, i: usize) -> Result<Self, BoxDynError> {
        Self::decode_opt(r, i)?.ok_or_else(|| msg("unexpected NULL"))
    }

    /// This value as a dynamic query [`Value`] (used by typed filters).
    fn to_value(&self) -> Result<Value, BoxDynError>;
}

macro_rules! direct_field {
    ($ty:ty, $sql:ident, $bind:ident, $read:ident, $val:ident) => {
        impl Field for $ty {
            const SQL_TYPE: SqlType = SqlType::$sql;
            #[inline]
            fn bind<B: Binder>(&self, b: &mut B) -> Result<(), BoxDynError> {
                b.$bind(self.clone())
            }
            #[inline]
            fn decode_opt<R: RowReader>(r: &R, i: usize) -> Result<Option<Self>, BoxDynError> {
                r.$read(i)
            }
            fn to_value(&self) -> Result<Value, BoxDynError> {
                Ok(Value::$val(Some(self.clone())))
            }
        }
    };
}

direct_field!(bool, Bool, bool, bool, Bool);
direct_field!(i16, SmallInt, i16, i16, SmallInt);
direct_field!(i32, Int, i32, i32, Int);
direct_field!(i64, BigInt, i64, i64, BigInt);
direct_field!(f32, Real, f32, f32, Float);
direct_field!(f64, Double, f64, f64, Double);
direct_field!(NaiveDate, Date, date, date, ChronoDate);
direct_field!(Uuid, Uuid, uuid, uuid, Uuid);

/// Integers stored in a wider signed column (SQL has no unsigned types on
/// PostgreSQL and SQLite; one mapping keeps all backends alike).
macro_rules! widened_field {
    ($ty:ty, $wide:ty, $sql:ident, $bind:ident, $read:ident, $val:ident) => {
        impl Field for $ty {
            const SQL_TYPE: SqlType = SqlType::$sql;
            #[inline]
            fn bind<B: Binder>(&self, b: &mut B) -> Result<(), BoxDynError> {
                let v = <$wide>::try_from(*self).map_err(|_| {
                    msg(format!(
                        "{} does not fit in a {} column",
                        self,
                        stringify!($wide)
                    ))
                })?;
                b.$bind(v)
            }
            #[inline]
            fn decode_opt<R: RowReader>(r: &R, i: usize) -> Result<Option<Self>, BoxDynError> {
                match r.$read(i)? {
                    None => Ok(None),
                    Some(v) => <$ty>::try_from(v)
                        .map(Some)
                        .map_err(|_| msg(format!("{} is out of range for {}", v, stringify!($ty)))),
                }
            }
            fn to_value(&self) -> Result<Value, BoxDynError> {
                let v = <$wide>::try_from(*self).map_err(|_| {
                    msg(format!(
                        "{} does not fit in a {} column",
                        self,
                        stringify!($wide)
                    ))
                })?;
                Ok(Value::$val(Some(v)))
            }
        }
    };
}

widened_field!(i8, i16, SmallInt, i16, i16, SmallInt);
widened_field!(u8, i16, SmallInt, i16, i16, SmallInt);
widened_field!(u16, i32, Int, i32, i32, Int);
widened_field!(u32, i64, BigInt, i64, i64, BigInt);
widened_field!(u64, i64, BigInt, i64, i64, BigInt);

impl Field for String {
    const SQL_TYPE: SqlType = SqlType::Text;
    #[inline]
    fn bind<B: Binder>(&self, b: &mut B) -> Result<(), BoxDynError> {
        b.str(self)
    }
    #[inline]
    fn decode_opt<R: RowReader>(r: &R, i: usize) -> Result<Option<Self>, BoxDynError> {
        r.string(i)
    }
    fn to_value(&self) -> Result<Value, BoxDynError> {
        Ok(Value::String(Some(self.clone())))
    }
}

impl Field for Vec<u8> {
    const SQL_TYPE: SqlType = SqlType::Blob;
    #[inline]
    fn bind<B: Binder>(&self, b: &mut B) -> Result<(), BoxDynError> {
        b.bytes(self)
    }
    #[inline]
    fn decode_opt<R: RowReader>(r: &R, i: usize) -> Result<Option<Self>, BoxDynError> {
        r.bytes(i)
    }
    fn to_value(&self) -> Result<Value, BoxDynError> {
        Ok(Value::Bytes(Some(self.clone())))
    }
}

impl Field for serde_json::Value {
    const SQL_TYPE: SqlType = SqlType::Json;
    fn bind<B: Binder>(&self, b: &mut B) -> Result<(), BoxDynError> {
        b.json(self)
    }
    fn decode_opt<R: RowReader>(r: &R, i: usize) -> Result<Option<Self>, BoxDynError> {
        r.json(i)
    }
    fn to_value(&self) -> Result<Value, BoxDynError> {
        Ok(Value::Json(Some(Box::new(self.clone()))))
    }
}

/// Drops the sub-microsecond part, which no backend stores alike.
fn trunc_time(t: NaiveTime) -> NaiveTime {
    t.with_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

/// Truncates a timestamp to microseconds, as every backend stores it.
pub(crate) fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

impl Field for DateTime<Utc> {
    const SQL_TYPE: SqlType = SqlType::TimestampTz;
    fn bind<B: Binder>(&self, b: &mut B) -> Result<(), BoxDynError> {
        b.timestamptz(truncate_micros(*self))
    }
    fn decode_opt<R: RowReader>(r: &R, i: usize) -> Result<Option<Self>, BoxDynError> {
        r.timestamptz(i)
    }
    fn to_value(&self) -> Result<Value, BoxDynError> {
        Ok(Value::ChronoDateTimeUtc(Some(truncate_micros(*self))))
    }
}

impl Field for NaiveDateTime {
    const SQL_TYPE: SqlType = SqlType::Timestamp;
    fn bind<B: Binder>(&self, b: &mut B) -> Result<(), BoxDynError> {
        b.timestamp(self.date().and_time(trunc_time(self.time())))
    }
    fn decode_opt<R: RowReader>(r: &R, i: usize) -> Result<Option<Self>, BoxDynError> {
        r.timestamp(i)
    }
    fn to_value(&self) -> Result<Value, BoxDynError> {
        Ok(Value::ChronoDateTime(Some(
            self.date().and_time(trunc_time(self.time())),
        )))
    }
}

impl Field for NaiveTime {
    const SQL_TYPE: SqlType = SqlType::Time;
    fn bind<B: Binder>(&self, b: &mut B) -> Result<(), BoxDynError> {
        b.time(trunc_time(*self))
    }
    fn decode_opt<R: RowReader>(r: &R, i: usize) -> Result<Option<Self>, BoxDynError> {
        r.time(i)
    }
    fn to_value(&self) -> Result<Value, BoxDynError> {
        Ok(Value::ChronoTime(Some(trunc_time(*self))))
    }
}

/// Exact decimals. Every backend reads a value back equal (`==`) to the one
/// written, normalized (`1.50` reads as `1.5`), so all backends and the
/// shared cache give the same value.
#[cfg(feature = "decimal")]
#[cfg_attr(docsrs, doc(cfg(feature = "decimal")))]
impl Field for Decimal {
    const SQL_TYPE: SqlType = SqlType::Decimal;
    #[inline]
    fn bind<B: Binder>(&self, b: &mut B) -> Result<(), BoxDynError> {
        b.decimal(*self)
    }
    #[inline]
    fn decode_opt<R: RowReader>(r: &R, i: usize) -> Result<Option<Self>, BoxDynError> {
        Ok(r.decimal(i)?.map(|d| d.normalize()))
    }
    fn to_value(&self) -> Result<Value, BoxDynError> {
        Ok(Value::Decimal(Some(*self)))
    }
}

impl<T: Field> Field for Option<T> {
    const SQL_TYPE: SqlType = T::SQL_TYPE;
    const NULLABLE: bool = true;
    #[inline]
    fn bind<B: Binder>(&self, b: &mut B) -> Result<(), BoxDynError> {
        match self {
            Some(v) => v.bind(b),
            None => b.null(T::SQL_TYPE),
        }
    }
    #[inline]
    fn decode_opt<R: RowReader>(r: &R, i: usize) -> Result<Option<Self>, BoxDynError> {
        T::decode_opt(r, i).map(Some)
    }
    fn to_value(&self) -> Result<Value, BoxDynError> {
        match self {
            Some(v) => v.to_value(),
            None => Ok(null_value(T::SQL_TYPE)),
        }
    }
}

/// A typed SQL `NULL` as a dynamic value.
pub(crate) fn null_value(ty: SqlType) -> Value {
    use Value as V;
    match ty {
        SqlType::Bool => V::Bool(None),
        SqlType::SmallInt => V::SmallInt(None),
        SqlType::Int => V::Int(None),
        SqlType::BigInt => V::BigInt(None),
        SqlType::Real => V::Float(None),
        SqlType::Double => V::Double(None),
        SqlType::Text => V::String(None),
        SqlType::Blob => V::Bytes(None),
        SqlType::Json => V::Json(None),
        SqlType::TimestampTz => V::ChronoDateTimeUtc(None),
        SqlType::Timestamp => V::ChronoDateTime(None),
        SqlType::Date => V::ChronoDate(None),
        SqlType::Time => V::ChronoTime(None),
        SqlType::Uuid => V::Uuid(None),
        #[cfg(feature = "decimal")]
        SqlType::Decimal => V::Decimal(None),
    }
}

/// Text mapping of a unit-only enum, generated by `#[derive(DbEnum)]`.
pub trait DbEnum: Sized + Send + Sync + 'static {
    /// The stored text of this variant.
    fn as_str(&self) -> &'static str;
    /// The variant stored as `s`, if any.
    fn from_str(s: &str) -> Option<Self>;
}

/// Field implementation shared by every `#[derive(DbEnum)]` type.
#[doc(hidden)]
pub mod enum_field {
    use super::*;

    pub fn bind<E: DbEnum, B: Binder>(v: &E, b: &mut B) -> Result<(), BoxDynError> {
        b.str(v.as_str())
    }

    pub fn decode_opt<E: DbEnum, R: RowReader>(r: &R, i: usize) -> Result<Option<E>, BoxDynError> {
        match r.string(i)? {
            None => Ok(None),
            Some(s) => E::from_str(&s).map(Some).ok_or_else(|| {
                msg(format!(
                    "`{s}` is not a variant of {}",
                    std::any::type_name::<E>()
                ))
            }),
        }
    }

    pub fn to_value<E: DbEnum>(v: &E) -> Result<Value, BoxDynError> {
        Ok(Value::String(Some(v.as_str().to_owned())))
    }
}

/// Binding and decoding of `#[persist(json)]` fields: any serde type stored
/// as a JSON document.
#[doc(hidden)]
pub mod json_field {
    use super::*;
    use serde::{Serialize, de::DeserializeOwned};

    pub fn bind<T: Serialize, B: Binder>(v: &T, b: &mut B) -> Result<(), BoxDynError> {
        let value = serde_json::to_value(v)?;
        if value.is_null() {
            return b.null(SqlType::Json);
        }
        b.json(&value)
    }

    pub fn decode<T: DeserializeOwned, R: RowReader>(r: &R, i: usize) -> Result<T, BoxDynError> {
        let value = r.json(i)?.unwrap_or(serde_json::Value::Null);
        Ok(serde_json::from_value(value)?)
    }
}

/// The PostgreSQL array element type of a non-`NULL` scalar value, for the
/// scalar types an array of which binds as the column's own type; `None`
/// for `NULL` and the others.
#[cfg(feature = "postgres")]
fn array_element(v: &Value) -> Option<sea_query::ArrayType> {
    use sea_query::ArrayType as A;
    Some(match v {
        Value::Bool(Some(_)) => A::Bool,
        Value::SmallInt(Some(_)) => A::SmallInt,
        Value::Int(Some(_)) => A::Int,
        Value::BigInt(Some(_)) => A::BigInt,
        Value::Float(Some(_)) => A::Float,
        Value::Double(Some(_)) => A::Double,
        Value::String(Some(_)) => A::String,
        Value::Bytes(Some(_)) => A::Bytes,
        Value::ChronoDate(Some(_)) => A::ChronoDate,
        Value::ChronoTime(Some(_)) => A::ChronoTime,
        Value::ChronoDateTime(Some(_)) => A::ChronoDateTime,
        Value::ChronoDateTimeUtc(Some(_)) => A::ChronoDateTimeUtc,
        Value::Uuid(Some(_)) => A::Uuid,
        #[cfg(feature = "decimal")]
        Value::Decimal(Some(_)) => A::Decimal,
        _ => return None,
    })
}

/// `values` as one PostgreSQL array value (`int8[]`, `text[]`, …), when
/// they are all non-`NULL` values of one scalar type an array can carry;
/// otherwise the values unchanged. (`NULL` elements are refused: the
/// binder cannot carry them, and `NOT (c IN (…, NULL))` must keep its
/// meaning.)
#[cfg(feature = "postgres")]
pub(crate) fn pg_array(values: Vec<Value>) -> Result<Value, Vec<Value>> {
    match values.first().and_then(array_element) {
        Some(ty) if is_array_element_list(&values) => Ok(Value::Array(ty, Some(Box::new(values)))),
        _ => Err(values),
    }
}

/// Whether [`pg_array`] takes `values`: a non-empty list of non-`NULL`
/// values of one array element type.
#[cfg(feature = "postgres")]
pub(crate) fn is_array_element_list(values: &[Value]) -> bool {
    let Some(ty) = values.first().and_then(array_element) else {
        return false;
    };
    values
        .iter()
        .all(|v| array_element(v).as_ref() == Some(&ty))
}
