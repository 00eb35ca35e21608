//! Custom field types: `#[derive(Field)]` newtypes, `rust_decimal::Decimal`
//! (feature `decimal`), and `DbEnum` names taken from serde; each read back
//! through persist and, where the stored form matters, with raw SQL.

use persist_core::prelude::*;
use persist_core::sql::Backend;

use crate::common::TestResult;
use crate::model::TextRow;

/// An amount in cents, stored as `bigint`.
#[derive(Field, Clone, Copy, Debug, PartialEq, Default)]
pub struct Money(i64);

/// An address, stored as text.
#[derive(Field, Clone, Debug, PartialEq, Default)]
pub struct Email {
    value: String,
}

impl From<&str> for Email {
    fn from(s: &str) -> Self {
        Email { value: s.into() }
    }
}

/// Stored as serde serializes it.
#[derive(DbEnum, serde::Serialize, Clone, Copy, Debug, PartialEq, Default)]
#[serde(rename_all = "kebab-case")]
#[persist(rename_all = "serde")]
pub enum Tier {
    #[default]
    FreeTrial,
    #[serde(rename = "PRO")]
    Professional,
    #[serde(rename(serialize = "gold", deserialize = "Gold"))]
    EnterpriseGold,
    /// A persist `rename` wins over serde's name.
    #[persist(rename = "legacy")]
    #[serde(rename = "old")]
    Legacy,
}

#[derive(Entity, Clone, Debug, PartialEq, Default)]
#[persist(table = "wallets")]
pub struct Wallet {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    #[persist(unique)]
    pub email: Email,
    pub balance: Money,
    pub limit_cents: Option<Money>,
    pub tier: Tier,
}

/// The first text column of each row of `sql`.
async fn texts(s: &Session, sql: &'static str) -> Result<Vec<String>, Error> {
    Ok(s.raw::<TextRow>(sql)
        .all()
        .await?
        .into_iter()
        .map(|r| r.value)
        .collect())
}

/// `expr` of every row of `table` as text, in key order, in each
/// backend's spelling of a cast to text.
fn as_text(b: Backend, sqlite: &'static str, pg: &'static str, my: &'static str) -> &'static str {
    match b {
        Backend::Sqlite => sqlite,
        Backend::Postgres => pg,
        Backend::MySql => my,
        other => panic!("the test suite has no case for {other:?}"),
    }
}

pub async fn newtypes_round_trip_and_filter(db: Db) -> TestResult {
    db.create_tables::<Wallet>().await?;
    let s = db.session().await?;
    let ann = s
        .insert(Wallet {
            email: "ann@example.com".into(),
            balance: Money(500),
            limit_cents: Some(Money(-20)),
            ..Default::default()
        })
        .await?;
    s.insert(Wallet {
        email: "bob@example.com".into(),
        balance: Money(50),
        ..Default::default()
    })
    .await?;
    s.commit().await?;

    let s = db.session().await?;
    let back = s.find::<Wallet>(&ann.id).await?.ok_or(Error::NotFound)?;
    assert_eq!(back, ann);
    // Filters on a newtype column take the newtype.
    let rich = s
        .query::<Wallet>()
        .filter(Wallet::BALANCE.gt(Money(100)))
        .all()
        .await?;
    assert_eq!(rich, vec![ann.clone()]);
    let capped = s
        .query::<Wallet>()
        .filter(Wallet::LIMIT_CENTS.eq(Some(Money(-20))))
        .count()
        .await?;
    assert_eq!(capped, 1);
    let uncapped = s
        .query::<Wallet>()
        .filter(Wallet::LIMIT_CENTS.is_null())
        .count()
        .await?;
    assert_eq!(uncapped, 1);
    // The generated finder of a unique newtype column.
    let found = Wallet::repo(&s).find_by_email("ann@example.com").await?;
    assert_eq!(found.map(|w| w.id), Some(ann.id));

    // Stored as the inner types are: an integer, text.
    let stored = texts(
        &s,
        as_text(
            db.backend(),
            "SELECT typeof(balance) || ':' || balance || ':' || email FROM wallets ORDER BY id",
            "SELECT pg_typeof(balance)::text || ':' || balance || ':' || email FROM wallets ORDER BY id",
            "SELECT CAST(CONCAT(DATA_TYPE, ':', w.balance, ':', w.email) AS CHAR) FROM wallets w, information_schema.COLUMNS c WHERE c.TABLE_SCHEMA = DATABASE() AND c.TABLE_NAME = 'wallets' AND c.COLUMN_NAME = 'balance' ORDER BY w.id",
        ),
    )
    .await?;
    assert_eq!(
        stored,
        ["integer:500:ann@example.com", "integer:50:bob@example.com"].map(|s| match db.backend() {
            Backend::Postgres => s.replace("integer", "bigint"),
            Backend::MySql => s.replace("integer", "bigint"),
            _ => s.to_owned(),
        })
    );

    // An update of a newtype field is written.
    let mut bob = Wallet::repo(&s)
        .find_by_email("bob@example.com")
        .await?
        .ok_or(Error::NotFound)?;
    bob.balance = Money(75);
    s.update(&mut bob)?;
    s.commit().await?;
    let s = db.session().await?;
    assert_eq!(
        s.find::<Wallet>(&bob.id).await?.map(|w| w.balance),
        Some(Money(75))
    );
    Ok(())
}

pub async fn db_enum_stores_serde_names(db: Db) -> TestResult {
    db.create_tables::<Wallet>().await?;
    let s = db.session().await?;
    let tiers = [
        Tier::FreeTrial,
        Tier::Professional,
        Tier::EnterpriseGold,
        Tier::Legacy,
    ];
    for (i, tier) in tiers.into_iter().enumerate() {
        s.insert(Wallet {
            email: format!("{i}@example.com").as_str().into(),
            tier,
            ..Default::default()
        })
        .await?;
    }
    s.commit().await?;

    let s = db.session().await?;
    let stored = texts(&s, "SELECT tier FROM wallets ORDER BY id").await?;
    let serde_names: Vec<String> = tiers[..3]
        .iter()
        .map(|t| match serde_json::to_value(t) {
            Ok(serde_json::Value::String(s)) => s,
            other => panic!("{t:?} serializes as {other:?}"),
        })
        .collect();
    assert_eq!(serde_names, ["free-trial", "PRO", "gold"]);
    assert_eq!(stored[..3], serde_names[..]);
    assert_eq!(stored[3], "legacy", "persist's own rename wins");
    // Read back and filtered by the same names.
    let pros = s
        .query::<Wallet>()
        .filter(Wallet::TIER.eq(Tier::Professional))
        .all()
        .await?;
    assert_eq!(
        pros.iter().map(|w| w.tier).collect::<Vec<_>>(),
        [Tier::Professional]
    );
    Ok(())
}

#[cfg(feature = "decimal")]
mod decimal {
    use std::sync::Arc;
    use std::time::Duration;

    use persist_cache::InProcessCache;
    use persist_core::cache::SharedCache;
    use persist_core::session::Isolation;
    use rust_decimal::Decimal;

    use super::*;
    use crate::common;

    #[derive(Entity, Clone, Debug, PartialEq, Default)]
    #[persist(table = "prices")]
    pub struct Price {
        #[persist(primary_key, auto_increment)]
        pub id: i64,
        pub amount: Decimal,
        pub discount: Option<Decimal>,
    }

    pub(super) fn dec(s: &str) -> Decimal {
        Decimal::from_str_exact(s).expect("a decimal literal")
    }

    /// Extremes of `Decimal`: its largest and smallest values, its finest
    /// fraction, a 29-digit value, a value with trailing zeros.
    pub(super) fn amounts() -> Vec<Decimal> {
        vec![
            dec("0.1"),
            dec("-1234567890123456789.0123456789"),
            Decimal::MAX,
            Decimal::MIN,
            dec("0.0000000000000000000000000001"),
            dec("1.50"),
        ]
    }

    pub(super) async fn round_trip(db: Db) -> TestResult {
        db.create_tables::<Price>().await?;
        let s = db.session().await?;
        let mut ids = Vec::new();
        for (i, amount) in amounts().into_iter().enumerate() {
            let discount = (i % 2 == 0).then(|| amount / Decimal::TWO);
            ids.push(
                s.insert(Price {
                    amount,
                    discount,
                    ..Default::default()
                })
                .await?
                .id,
            );
        }
        s.commit().await?;

        let s = db.session().await?;
        let back = s.query::<Price>().order_by(Price::ID.asc()).all().await?;
        let got: Vec<_> = back.iter().map(|p| (p.amount, p.discount)).collect();
        let want: Vec<_> = amounts()
            .into_iter()
            .enumerate()
            .map(|(i, a)| (a, (i % 2 == 0).then(|| a / Decimal::TWO)))
            .collect();
        assert_eq!(got, want, "exact on every backend");
        // Read back normalized: `1.50` as `1.5`, the same on every backend.
        assert_eq!(back[5].amount.to_string(), "1.5");
        assert_eq!(back[4].amount.to_string(), "0.0000000000000000000000000001");

        // The stored form, as the database shows it.
        let stored = texts(
            &s,
            as_text(
                db.backend(),
                "SELECT typeof(amount) || ':' || amount FROM prices ORDER BY id",
                "SELECT pg_typeof(amount)::text || ':' || amount::text FROM prices ORDER BY id",
                "SELECT CAST(amount AS CHAR) FROM prices ORDER BY id",
            ),
        )
        .await?;
        match db.backend() {
            Backend::Sqlite => assert_eq!(
                stored[0..2],
                ["text:0.1", "text:-1234567890123456789.0123456789"]
            ),
            Backend::Postgres => assert_eq!(
                stored[0..2],
                ["numeric:0.1", "numeric:-1234567890123456789.0123456789"]
            ),
            _ => assert_eq!(
                stored[0..2],
                [
                    "0.100000000000000000000000000000",
                    "-1234567890123456789.012345678900000000000000000000"
                ]
            ),
        }
        let stored_max = texts(
            &s,
            as_text(
                db.backend(),
                "SELECT amount FROM prices WHERE id = 3",
                "SELECT amount::text FROM prices WHERE id = 3",
                "SELECT CAST(amount AS CHAR) FROM prices WHERE id = 3",
            ),
        )
        .await?;
        assert!(
            stored_max[0].starts_with("79228162514264337593543950335"),
            "{stored_max:?}"
        );

        // Filters: `eq` finds the value whatever its scale was written as.
        let n = s
            .query::<Price>()
            .filter(Price::AMOUNT.eq(dec("1.500")))
            .count()
            .await?;
        assert_eq!(n, 1);
        let n = s
            .query::<Price>()
            .filter(Price::DISCOUNT.eq(Some(dec("0.05"))))
            .count()
            .await?;
        assert_eq!(n, 1);
        let n = s
            .query::<Price>()
            .filter(Price::DISCOUNT.is_null())
            .count()
            .await?;
        assert_eq!(n, 3);
        // `gt` compares numbers on PostgreSQL and MySQL; SQLite stores text,
        // where it compares text (documented in types.md).
        let above_nine: Vec<_> = s
            .query::<Price>()
            .filter(Price::AMOUNT.gt(Decimal::from(9)))
            .order_by(Price::ID.asc())
            .all()
            .await?
            .into_iter()
            .map(|p| p.amount)
            .collect();
        match db.backend() {
            Backend::Sqlite => assert_eq!(
                above_nine,
                Vec::<Decimal>::new(),
                "text order: \"7…\" < \"9\""
            ),
            _ => assert_eq!(above_nine, [Decimal::MAX]),
        }
        let above_one = s
            .query::<Price>()
            .filter(Price::AMOUNT.gt(Decimal::ONE))
            .count()
            .await?;
        assert_eq!(above_one, 2, "MAX and 1.5");

        // Updates write the new value, `None` included.
        let mut p = s.find::<Price>(&ids[0]).await?.ok_or(Error::NotFound)?;
        p.amount = dec("-0.25");
        p.discount = None;
        s.update(&mut p)?;
        s.commit().await?;
        let s = db.session().await?;
        let again = s.find::<Price>(&ids[0]).await?.ok_or(Error::NotFound)?;
        assert_eq!((again.amount, again.discount), (dec("-0.25"), None));
        Ok(())
    }

    pub(super) async fn through_shared_cache(db: Db) -> TestResult {
        let cache = Arc::new(InProcessCache::new());
        let direct = db.sqlite_direct();
        common::with_isolated_db(
            db.backend(),
            "custom_types::decimal_cache",
            |url| async move {
                let cdb = Db::builder()
                    .sqlite_direct(direct)
                    .isolation(Isolation::ReadCommitted)
                    .cache_arc(cache.clone())
                    .cache_entity::<Price>(Duration::from_secs(60))
                    .connect(&url)
                    .await?;
                cdb.create_tables::<Price>().await?;
                let s = cdb.session().await?;
                let mut ids = Vec::new();
                for amount in amounts() {
                    let p = Price {
                        amount,
                        discount: Some(-amount),
                        ..Default::default()
                    };
                    ids.push(s.insert(p).await?.id);
                }
                s.insert(Price {
                    amount: Decimal::ZERO,
                    discount: None,
                    ..Default::default()
                })
                .await?;
                s.commit().await?;
                let puts = cache.metrics().puts;
                assert!(puts >= 7, "every committed row is cached ({puts})");

                let s = cdb.session().await?;
                for (id, amount) in ids.iter().zip(amounts()) {
                    let p = s.find::<Price>(id).await?.ok_or(Error::NotFound)?;
                    assert_eq!((p.amount, p.discount), (amount, Some(-amount)));
                }
                let zero = s
                    .find::<Price>(&(ids[5] + 1))
                    .await?
                    .ok_or(Error::NotFound)?;
                assert_eq!((zero.amount, zero.discount), (Decimal::ZERO, None));
                assert_eq!(s.statement_count(), 0, "served by the shared cache");
                cdb.close().await;
                Ok(())
            },
        )
        .await
    }
}

#[cfg(feature = "decimal")]
pub async fn decimal_round_trip_and_filters(db: Db) -> TestResult {
    decimal::round_trip(db).await
}

#[cfg(feature = "decimal")]
pub async fn decimal_through_shared_cache(db: Db) -> TestResult {
    decimal::through_shared_cache(db).await
}

/// Without the feature there is nothing to test.
#[cfg(not(feature = "decimal"))]
pub async fn decimal_round_trip_and_filters(_db: Db) -> TestResult {
    Ok(())
}

/// Without the feature there is nothing to test.
#[cfg(not(feature = "decimal"))]
pub async fn decimal_through_shared_cache(_db: Db) -> TestResult {
    Ok(())
}
