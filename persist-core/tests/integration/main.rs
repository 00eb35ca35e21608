//! The integration suite: written once, run on SQLite, PostgreSQL and
//! MariaDB/MySQL (`<backend>::<module>::<test>`).

mod common;
mod model;
mod smoke;

suite! {
    smoke: [roundtrip],
}
