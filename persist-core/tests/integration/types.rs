//! Every supported field type round-trips identically on every backend.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use persist_core::prelude::*;

use crate::common::TestResult;
use crate::model::*;

fn nanos_ts() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 58)
        .single()
        .expect("valid")
        + chrono::Duration::nanoseconds(123_456_789)
}

fn nanos_naive() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(1999, 12, 31)
        .and_then(|d| d.and_hms_nano_opt(1, 2, 3, 987_654_321))
        .expect("valid")
}

fn nanos_time() -> NaiveTime {
    NaiveTime::from_hms_nano_opt(13, 14, 15, 555_666_777).expect("valid")
}

pub(crate) fn sample() -> AllTypes {
    AllTypes {
        id: 0,
        a_i8: i8::MIN,
        a_i16: i16::MIN,
        a_i32: i32::MIN,
        a_i64: i64::MIN,
        a_u8: u8::MAX,
        a_u16: u16::MAX,
        a_u32: u32::MAX,
        a_u64: i64::MAX as u64,
        a_f32: 1.5,
        a_f64: -2.25e300,
        a_bool: true,
        a_string: "héllo ✓ 'quoted' \"double\" \\ %_".into(),
        a_bytes: vec![0, 1, 127, 128, 255],
        opt_none: None,
        opt_some: Some(String::new()),
        opt_int: Some(-7),
        opt_uuid: None,
        ts_utc: nanos_ts(),
        ts_naive: nanos_naive(),
        a_date: NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid"),
        a_time: nanos_time(),
        a_uuid: uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210),
        a_json: serde_json::json!({"a": [1, 2.5, "x", null, true], "b": {"nested": "ü"}}),
        prefs: Prefs {
            currency: "EUR".into(),
            alerts: true,
        },
        opt_prefs: None,
        kind: AccountKind::Savings,
    }
}

/// What the database stores: timestamps and times cut to microseconds.
fn stored(mut v: AllTypes) -> AllTypes {
    v.ts_utc = Utc
        .with_ymd_and_hms(2024, 2, 29, 23, 59, 58)
        .single()
        .expect("valid")
        + chrono::Duration::microseconds(123_456);
    v.ts_naive = NaiveDate::from_ymd_opt(1999, 12, 31)
        .and_then(|d| d.and_hms_micro_opt(1, 2, 3, 987_654))
        .expect("valid");
    v.a_time = NaiveTime::from_hms_micro_opt(13, 14, 15, 555_666).expect("valid");
    v
}

pub async fn all_types_round_trip(db: Db) -> TestResult {
    db.create_tables::<AllTypes>().await?;
    let s = db.session().await?;
    let inserted = s.insert(sample()).await?;
    let other = AllTypes {
        a_i8: i8::MAX,
        a_i16: i16::MAX,
        a_i32: i32::MAX,
        a_i64: i64::MAX,
        a_u8: 0,
        a_u16: 0,
        a_u32: 0,
        a_u64: 0,
        a_f32: -0.25,
        a_f64: f64::MIN_POSITIVE,
        a_bool: false,
        a_string: String::new(),
        a_bytes: Vec::new(),
        opt_none: None,
        opt_some: Some("x".into()),
        opt_int: None,
        opt_uuid: Some(uuid::Uuid::nil()),
        a_json: serde_json::json!([]),
        prefs: Prefs::default(),
        opt_prefs: Some(Prefs {
            currency: "USD".into(),
            alerts: false,
        }),
        kind: AccountKind::Checking,
        ..sample()
    };
    let other = s.insert(other).await?;
    s.commit().await?;

    let s = db.session().await?;
    let got = s
        .find::<AllTypes>(&inserted.id)
        .await?
        .ok_or(Error::NotFound)?;
    assert_eq!(
        got,
        stored(AllTypes {
            id: inserted.id,
            ..sample()
        })
    );
    let got_other = s
        .find::<AllTypes>(&other.id)
        .await?
        .ok_or(Error::NotFound)?;
    assert_eq!(got_other, stored(other.clone()));

    // The same values read through a query and a stream of all rows.
    assert_eq!(
        s.all::<AllTypes>().await?,
        vec![got.clone(), got_other.clone()]
    );
    Ok(())
}

pub async fn filters_on_every_type(db: Db) -> TestResult {
    db.create_tables::<AllTypes>().await?;
    let s = db.session().await?;
    let row = s.insert(sample()).await?;
    let one = |f| {
        let s = s.clone();
        async move {
            s.query::<AllTypes>()
                .filter(f)
                .all()
                .await
                .map(|v| v.into_iter().map(|r| r.id).collect::<Vec<_>>())
        }
    };
    let id = vec![row.id];
    let v = sample();
    assert_eq!(one(AllTypes::A_I8.eq(v.a_i8)).await?, id);
    assert_eq!(one(AllTypes::A_I16.eq(v.a_i16)).await?, id);
    assert_eq!(one(AllTypes::A_I32.eq(v.a_i32)).await?, id);
    assert_eq!(one(AllTypes::A_I64.eq(v.a_i64)).await?, id);
    assert_eq!(one(AllTypes::A_U8.eq(v.a_u8)).await?, id);
    assert_eq!(one(AllTypes::A_U16.eq(v.a_u16)).await?, id);
    assert_eq!(one(AllTypes::A_U32.eq(v.a_u32)).await?, id);
    assert_eq!(one(AllTypes::A_U64.eq(v.a_u64)).await?, id);
    assert_eq!(one(AllTypes::A_F64.lt(0.0)).await?, id);
    assert_eq!(one(AllTypes::A_BOOL.eq(true)).await?, id);
    assert_eq!(one(AllTypes::A_STRING.eq(v.a_string.clone())).await?, id);
    assert_eq!(one(AllTypes::A_BYTES.eq(v.a_bytes.clone())).await?, id);
    assert_eq!(one(AllTypes::OPT_NONE.is_null()).await?, id);
    assert_eq!(one(AllTypes::OPT_SOME.eq(Some(String::new()))).await?, id);
    // Timestamps with nanoseconds match the stored microseconds.
    assert_eq!(one(AllTypes::TS_UTC.eq(v.ts_utc)).await?, id);
    assert_eq!(one(AllTypes::TS_NAIVE.eq(v.ts_naive)).await?, id);
    assert_eq!(one(AllTypes::A_TIME.eq(v.a_time)).await?, id);
    assert_eq!(one(AllTypes::A_DATE.eq(v.a_date)).await?, id);
    assert_eq!(one(AllTypes::A_UUID.eq(v.a_uuid)).await?, id);
    assert_eq!(one(AllTypes::KIND.eq(AccountKind::Savings)).await?, id);
    assert!(
        one(AllTypes::KIND.eq(AccountKind::Checking))
            .await?
            .is_empty()
    );
    assert!(one(AllTypes::TS_UTC.gt(v.ts_utc)).await?.is_empty());
    Ok(())
}
