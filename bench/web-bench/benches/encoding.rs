//! The web-session data encoding: MessagePack (`rmp-serde`, what persist's
//! session store and tower-sessions' own stores write) against JSON
//! (`serde_json`), encode and decode of a typical session's data map (a
//! user id, a cart of five items, a CSRF token) and of the whole
//! tower-sessions `Record` around it. Prints the encoded sizes.
//!
//! `bash bench/run.sh` with `WEB_BENCHES=encoding` runs it.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::Criterion;
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use web_bench::session_data;

type Data = HashMap<String, serde_json::Value>;

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let data = session_data();
    let record = Record {
        id: Id(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
        data: data.clone(),
        expiry_date: OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("a valid time"),
    };

    // Outside any timed loop: both encodings give the same data back.
    let mp = rmp_serde::to_vec(&data).expect("msgpack encode");
    let js = serde_json::to_vec(&data).expect("json encode");
    assert_eq!(
        rmp_serde::from_slice::<Data>(&mp).expect("msgpack decode"),
        data
    );
    assert_eq!(
        serde_json::from_slice::<Data>(&js).expect("json decode"),
        data
    );
    let rec_mp = rmp_serde::to_vec(&record).expect("msgpack encode");
    let rec_js = serde_json::to_vec(&record).expect("json encode");
    assert_eq!(
        rmp_serde::from_slice::<Record>(&rec_mp).expect("msgpack decode"),
        record
    );
    assert_eq!(
        serde_json::from_slice::<Record>(&rec_js).expect("json decode"),
        record
    );
    eprintln!(
        "encoded sizes: data map msgpack {} B, json {} B; record msgpack {} B, json {} B",
        mp.len(),
        js.len(),
        rec_mp.len(),
        rec_js.len()
    );

    let mut g = c.benchmark_group("encoding/data");
    g.bench_function("msgpack_encode", |b| {
        b.iter(|| rmp_serde::to_vec(black_box(&data)).expect("encode"))
    });
    g.bench_function("json_encode", |b| {
        b.iter(|| serde_json::to_vec(black_box(&data)).expect("encode"))
    });
    g.bench_function("msgpack_decode", |b| {
        b.iter(|| rmp_serde::from_slice::<Data>(black_box(&mp)).expect("decode"))
    });
    g.bench_function("json_decode", |b| {
        b.iter(|| serde_json::from_slice::<Data>(black_box(&js)).expect("decode"))
    });
    g.bench_function("msgpack_roundtrip", |b| {
        b.iter(|| {
            let bytes = rmp_serde::to_vec(black_box(&data)).expect("encode");
            rmp_serde::from_slice::<Data>(&bytes).expect("decode")
        })
    });
    g.bench_function("json_roundtrip", |b| {
        b.iter(|| {
            let bytes = serde_json::to_vec(black_box(&data)).expect("encode");
            serde_json::from_slice::<Data>(&bytes).expect("decode")
        })
    });
    g.finish();

    let mut g = c.benchmark_group("encoding/record");
    g.bench_function("msgpack_roundtrip", |b| {
        b.iter(|| {
            let bytes = rmp_serde::to_vec(black_box(&record)).expect("encode");
            rmp_serde::from_slice::<Record>(&bytes).expect("decode")
        })
    });
    g.bench_function("json_roundtrip", |b| {
        b.iter(|| {
            let bytes = serde_json::to_vec(black_box(&record)).expect("encode");
            serde_json::from_slice::<Record>(&bytes).expect("decode")
        })
    });
    g.finish();
    c.final_summary();
}
