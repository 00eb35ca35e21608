//! Typed queries: filters, ordering, paging, counts, single rows, streams and raw SQL.

use chrono::{TimeZone, Utc};
use futures_util::StreamExt;
use persist_core::prelude::*;
use persist_core::query::Query;
use persist_core::sql::Backend;

use crate::common::TestResult;
use crate::model::*;

struct Seed {
    customers: Vec<Customer>,
    accounts: Vec<Account>,
}

/// Four customers and five accounts:
///
/// | iban | owner | balance | closed |
/// |------|-------|---------|--------|
/// | DE01 | alice | 100     | no     |
/// | DE02 | alice | 250     | no     |
/// | DE03 | bob   | 500     | yes    |
/// | DE04 | carol | -50     | no     |
/// | DE05 | dave  | 1000    | yes    |
async fn seed(db: &Db) -> Result<(Session, Seed), Error> {
    db.create_tables::<(Customer, Account)>().await?;
    let s = db.session().await?;
    let customers = s
        .insert_many(
            [
                ("alice@x", "Alice"),
                ("bob@y", "Bob"),
                ("carol@x", "Carol"),
                ("dave@y", "Dave"),
            ]
            .into_iter()
            .map(|(e, n)| Customer {
                id: 0,
                email: e.into(),
                name: n.into(),
            })
            .collect(),
        )
        .await?;
    let closed = Utc
        .with_ymd_and_hms(2024, 5, 6, 7, 8, 9)
        .single()
        .map(|t| t + chrono::Duration::microseconds(123_456));
    let spec = [
        ("DE01", 0, 100, None),
        ("DE02", 0, 250, None),
        ("DE03", 1, 500, closed),
        ("DE04", 2, -50, None),
        ("DE05", 3, 1000, closed),
    ];
    let mut accounts = Vec::new();
    for (iban, owner, balance, closed_at) in spec {
        let mut a = Account::new(iban, customers[owner].id, balance);
        a.closed_at = closed_at;
        accounts.push(s.insert(a).await?);
    }
    s.commit().await?;
    Ok((
        db.session().await?,
        Seed {
            customers,
            accounts,
        },
    ))
}

async fn ibans(q: Query<'_, Account>) -> Result<Vec<String>, Error> {
    Ok(q.all().await?.into_iter().map(|a| a.iban).collect())
}

fn by_iban(s: &Session) -> Query<'_, Account> {
    s.query::<Account>().order_by(Account::IBAN)
}

pub async fn comparisons(db: Db) -> TestResult {
    let (s, _) = seed(&db).await?;
    let b = Account::BALANCE_CENTS;
    assert_eq!(ibans(by_iban(&s).filter(b.eq(250))).await?, ["DE02"]);
    assert_eq!(
        ibans(by_iban(&s).filter(b.ne(250))).await?,
        ["DE01", "DE03", "DE04", "DE05"]
    );
    assert_eq!(ibans(by_iban(&s).filter(b.lt(100))).await?, ["DE04"]);
    assert_eq!(
        ibans(by_iban(&s).filter(b.le(100))).await?,
        ["DE01", "DE04"]
    );
    assert_eq!(ibans(by_iban(&s).filter(b.gt(500))).await?, ["DE05"]);
    assert_eq!(
        ibans(by_iban(&s).filter(b.ge(500))).await?,
        ["DE03", "DE05"]
    );
    assert_eq!(
        ibans(by_iban(&s).filter(Account::IBAN.eq("DE04"))).await?,
        ["DE04"]
    );
    assert!(
        ibans(by_iban(&s).filter(Account::IBAN.eq("nope")))
            .await?
            .is_empty()
    );
    Ok(())
}

pub async fn is_in_and_like(db: Db) -> TestResult {
    let (s, seed) = seed(&db).await?;
    assert_eq!(
        ibans(by_iban(&s).filter(Account::IBAN.is_in(["DE05", "DE01", "XX"]))).await?,
        ["DE01", "DE05"]
    );
    let alice = seed.customers[0].id;
    assert_eq!(
        ibans(by_iban(&s).filter(Account::CUSTOMER_ID.is_in([alice]))).await?,
        ["DE01", "DE02"]
    );
    // An empty list matches nothing (and is valid SQL on every backend).
    let none: Vec<String> = Vec::new();
    assert!(
        ibans(by_iban(&s).filter(Account::IBAN.is_in(none.clone())))
            .await?
            .is_empty()
    );
    assert_eq!(
        s.query::<Account>()
            .filter(Account::IBAN.is_in(none.clone()))
            .count()
            .await?,
        0
    );
    assert_eq!(
        s.query::<Account>()
            .filter(Account::IBAN.is_in(none).not())
            .count()
            .await?,
        5
    );

    let names = |v: Vec<Customer>| v.into_iter().map(|c| c.name).collect::<Vec<_>>();
    let q = s.query::<Customer>().order_by(Customer::NAME);
    assert_eq!(
        names(q.filter(Customer::EMAIL.like("%@x")).all().await?),
        ["Alice", "Carol"]
    );
    let q = s.query::<Customer>().order_by(Customer::NAME);
    assert_eq!(
        names(q.filter(Customer::NAME.like("_a%")).all().await?),
        ["Carol", "Dave"]
    );
    Ok(())
}

pub async fn null_checks(db: Db) -> TestResult {
    let (s, seed) = seed(&db).await?;
    assert_eq!(
        ibans(by_iban(&s).filter(Account::CLOSED_AT.is_null())).await?,
        ["DE01", "DE02", "DE04"]
    );
    assert_eq!(
        ibans(by_iban(&s).filter(Account::CLOSED_AT.is_not_null())).await?,
        ["DE03", "DE05"]
    );
    let closed = seed.accounts[2].closed_at;
    assert_eq!(
        ibans(by_iban(&s).filter(Account::CLOSED_AT.eq(closed))).await?,
        ["DE03", "DE05"]
    );
    Ok(())
}

pub async fn and_or_not(db: Db) -> TestResult {
    let (s, _) = seed(&db).await?;
    let b = Account::BALANCE_CENTS;
    assert_eq!(
        ibans(by_iban(&s).filter(b.gt(0).and(b.lt(500)))).await?,
        ["DE01", "DE02"]
    );
    assert_eq!(
        ibans(by_iban(&s).filter(b.eq(100).or(b.eq(1000)))).await?,
        ["DE01", "DE05"]
    );
    assert_eq!(ibans(by_iban(&s).filter(b.gt(0).not())).await?, ["DE04"]);
    assert_eq!(
        ibans(by_iban(&s).filter(!b.le(250))).await?,
        ["DE03", "DE05"]
    );
    // Two filter calls combine with AND.
    assert_eq!(
        ibans(
            by_iban(&s)
                .filter(b.gt(0))
                .filter(Account::CLOSED_AT.is_null())
        )
        .await?,
        ["DE01", "DE02"]
    );
    // Grouping is kept: (balance >= 500 OR iban = DE01) AND closed_at IS NULL.
    let f = b
        .ge(500)
        .or(Account::IBAN.eq("DE01"))
        .and(Account::CLOSED_AT.is_null());
    assert_eq!(ibans(by_iban(&s).filter(f)).await?, ["DE01"]);
    // NOT (a OR b).
    let f = b.eq(100).or(b.eq(250)).not();
    assert_eq!(
        ibans(by_iban(&s).filter(f)).await?,
        ["DE03", "DE04", "DE05"]
    );
    Ok(())
}

pub async fn order_limit_offset(db: Db) -> TestResult {
    let (s, _) = seed(&db).await?;
    let q = || s.query::<Account>();
    assert_eq!(
        ibans(q().order_by(Account::BALANCE_CENTS.desc())).await?,
        ["DE05", "DE03", "DE02", "DE01", "DE04"]
    );
    assert_eq!(
        ibans(q().order_by(Account::BALANCE_CENTS.asc())).await?,
        ["DE04", "DE01", "DE02", "DE03", "DE05"]
    );
    assert_eq!(
        ibans(
            q().order_by(Account::CUSTOMER_ID)
                .order_by(Account::BALANCE_CENTS.desc())
        )
        .await?,
        ["DE02", "DE01", "DE03", "DE04", "DE05"]
    );
    assert_eq!(
        ibans(q().order_by(Account::IBAN).limit(2)).await?,
        ["DE01", "DE02"]
    );
    assert_eq!(
        ibans(q().order_by(Account::IBAN).offset(1).limit(2)).await?,
        ["DE02", "DE03"]
    );
    assert_eq!(
        ibans(q().order_by(Account::IBAN).offset(3)).await?,
        ["DE04", "DE05"]
    );
    assert!(
        ibans(q().order_by(Account::IBAN).offset(10))
            .await?
            .is_empty()
    );
    assert!(
        ibans(q().order_by(Account::IBAN).limit(0))
            .await?
            .is_empty()
    );
    Ok(())
}

pub async fn count_and_exists(db: Db) -> TestResult {
    let (s, _) = seed(&db).await?;
    let b = Account::BALANCE_CENTS;
    assert_eq!(s.query::<Account>().count().await?, 5);
    assert_eq!(s.query::<Account>().filter(b.gt(0)).count().await?, 4);
    assert_eq!(
        s.query::<Account>()
            .filter(b.gt(0))
            .limit(2)
            .count()
            .await?,
        2
    );
    assert_eq!(s.query::<Account>().limit(10).count().await?, 5);
    assert_eq!(
        s.query::<Account>()
            .order_by(Account::IBAN)
            .offset(3)
            .count()
            .await?,
        2
    );
    assert_eq!(
        s.query::<Account>()
            .filter(b.gt(0))
            .offset(1)
            .limit(10)
            .count()
            .await?,
        3
    );
    assert!(s.query::<Account>().filter(b.gt(999)).exists().await?);
    assert!(!s.query::<Account>().filter(b.gt(10_000)).exists().await?);
    let before = s.statement_count();
    assert!(s.query::<Account>().exists().await?);
    assert_eq!(s.statement_count() - before, 1);
    Ok(())
}

pub async fn one_and_optional(db: Db) -> TestResult {
    let (s, seed) = seed(&db).await?;
    let b = Account::BALANCE_CENTS;
    let de03 = s
        .query::<Account>()
        .filter(Account::IBAN.eq("DE03"))
        .one()
        .await?;
    assert_eq!(de03, seed.accounts[2]);
    assert!(matches!(
        s.query::<Account>().filter(b.gt(10_000)).one().await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        s.query::<Account>().filter(b.gt(0)).one().await,
        Err(Error::TooManyRows)
    ));
    assert_eq!(
        s.query::<Account>().filter(b.gt(10_000)).optional().await?,
        None
    );
    assert_eq!(
        s.query::<Account>()
            .filter(b.gt(999))
            .optional()
            .await?
            .map(|a| a.iban),
        Some("DE05".into())
    );
    assert!(matches!(
        s.query::<Account>().filter(b.gt(0)).optional().await,
        Err(Error::TooManyRows)
    ));
    // A limit of one makes a multi-row match a single row.
    assert_eq!(
        s.query::<Account>()
            .order_by(Account::IBAN)
            .limit(1)
            .one()
            .await?
            .iban,
        "DE01"
    );
    Ok(())
}

pub async fn stream_yields_all_and_blocks_session(db: Db) -> TestResult {
    let (s, seed) = seed(&db).await?;
    let before = s.statement_count();
    let mut stream = s.query::<Account>().order_by(Account::IBAN).stream();
    let first = stream.next().await.ok_or(Error::NotFound)??;
    assert_eq!(first, seed.accounts[0]);

    assert!(matches!(
        s.count::<Account>().await,
        Err(Error::SessionBusy)
    ));
    assert!(matches!(
        s.find::<Account>(&first.id).await,
        Err(Error::SessionBusy)
    ));
    assert!(matches!(
        s.query::<Customer>().all().await,
        Err(Error::SessionBusy)
    ));
    assert!(matches!(
        s.add(Customer::default()),
        Err(Error::SessionBusy)
    ));
    assert!(matches!(s.commit().await, Err(Error::SessionBusy)));
    assert!(matches!(s.rollback().await, Err(Error::SessionBusy)));

    let mut all = vec![first];
    while let Some(a) = stream.next().await {
        all.push(a?);
    }
    assert_eq!(all, seed.accounts);
    drop(stream);

    assert_eq!(
        s.statement_count() - before,
        1,
        "the stream is one statement"
    );
    assert_eq!(
        s.count::<Account>().await?,
        5,
        "the session works again once the stream is gone"
    );

    // A stream dropped half-way frees the session too.
    let mut stream = s.query::<Account>().order_by(Account::IBAN).stream();
    assert_eq!(stream.next().await.ok_or(Error::NotFound)??.iban, "DE01");
    assert!(matches!(
        s.count::<Account>().await,
        Err(Error::SessionBusy)
    ));
    drop(stream);
    assert_eq!(
        s.query::<Account>()
            .filter(Account::IBAN.eq("DE05"))
            .one()
            .await?,
        seed.accounts[4]
    );

    // An empty stream ends at once.
    let none: Vec<_> = s
        .query::<Account>()
        .filter(Account::BALANCE_CENTS.gt(10_000))
        .stream()
        .collect()
        .await;
    assert!(none.is_empty());
    s.commit().await?;
    Ok(())
}

pub async fn raw_sql_decodes_entity(db: Db) -> TestResult {
    let (s, seed) = seed(&db).await?;
    let pg = db.backend() == Backend::Postgres;
    let bob = &seed.customers[1];
    let sql = if pg {
        "SELECT * FROM customers WHERE id = $1"
    } else {
        "SELECT * FROM customers WHERE id = ?"
    };
    assert_eq!(&s.raw::<Customer>(sql).bind(bob.id).one().await?, bob);
    assert_eq!(s.raw::<Customer>(sql).bind(-1i64).optional().await?, None);

    let all = s
        .raw::<Customer>("SELECT * FROM customers ORDER BY id")
        .all()
        .await?;
    assert_eq!(all, seed.customers);

    // An entity with JSON, enum, optional and timestamp columns.
    let sql = if pg {
        "SELECT * FROM accounts WHERE iban = $1 OR balance_cents > $2 ORDER BY iban"
    } else {
        "SELECT * FROM accounts WHERE iban = ? OR balance_cents > ? ORDER BY iban"
    };
    let got = s
        .raw::<Account>(sql)
        .bind("DE01".to_string())
        .bind(600i64)
        .all()
        .await?;
    assert_eq!(
        got,
        vec![seed.accounts[0].clone(), seed.accounts[4].clone()]
    );
    Ok(())
}
