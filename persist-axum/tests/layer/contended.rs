//! Contended writes inside requests: `Db::transaction` with retries from a
//! handler, composed with the request's own session, and whole requests
//! run again on a retryable error.

use std::sync::atomic::Ordering;

use axum::http::{Method, StatusCode};
use persist_axum::PersistLayer;
use persist_core::prelude::*;
use persist_core::sql::Backend;

use crate::app::{self, Note, Order, PRODUCT, Stock, Tables, call, count};
use crate::common::TestResult;

async fn stock(db: &Db, qty: i64) -> Result<(), Error> {
    db.create_tables::<Tables>().await?;
    let s = db.session().await?;
    s.insert(Stock {
        id: PRODUCT,
        qty,
        version: 0,
    })
    .await?;
    s.commit().await
}

async fn stock_left(db: &Db) -> Result<i64, Error> {
    let s = db.session().await?;
    let st = s.find::<Stock>(&PRODUCT).await?.ok_or(Error::NotFound)?;
    s.rollback().await?;
    Ok(st.qty)
}

/// 20 buyers at once for 5 units: each checkout runs in `db.transaction`
/// from its request and is retried when it meets a stale row, so exactly
/// the stock is sold — no unit oversold, none left unsold.
pub async fn checkout_in_transactions_sells_exactly_the_stock(db: Db) -> TestResult {
    stock(&db, 5).await?;
    let (app, _) = app::router(db.clone(), PersistLayer::new(db.clone()));
    let mut buyers = Vec::new();
    for i in 0..20 {
        let app = app.clone();
        buyers.push(tokio::spawn(async move {
            call(&app, Method::POST, &format!("/checkout/buyer{i}"), None).await
        }));
    }
    let mut sold = 0;
    let mut out_of_stock = 0;
    for b in buyers {
        let (status, body) = b.await.expect("buyer task");
        match status {
            StatusCode::CREATED => sold += 1,
            StatusCode::CONFLICT => {
                assert_eq!(
                    body["error"], "out of stock",
                    "only a real sell-out is a 409"
                );
                out_of_stock += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((sold, out_of_stock), (5, 15));
    assert_eq!(count::<Order>(&db).await?, 5);
    assert_eq!(stock_left(&db).await?, 0);
    Ok(())
}

/// The request's session wrote first (on SQLite it then holds the one
/// write lock): the checkout's `db.transaction` does not wait on it. On
/// PostgreSQL and MySQL the checkout commits by itself, whatever the
/// request does next; on SQLite it runs inside the request's session and
/// commits or rolls back with it.
pub async fn transaction_after_the_request_wrote_does_not_wait_on_itself(db: Db) -> TestResult {
    stock(&db, 3).await?;
    let (app, _) = app::router(db.clone(), PersistLayer::new(db.clone()));
    let (status, body) = call(&app, Method::POST, "/checkout_after_write/ann/201", None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(count::<Order>(&db).await?, 1);
    assert_eq!(
        count::<Note>(&db).await?,
        1,
        "the request's own write committed"
    );
    assert_eq!(stock_left(&db).await?, 2);

    // The request fails after its checkout.
    let (status, _) = call(&app, Method::POST, "/checkout_after_write/bob/500", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        count::<Note>(&db).await?,
        1,
        "the request's own write rolled back"
    );
    if db.backend() == Backend::Sqlite {
        assert_eq!(
            count::<Order>(&db).await?,
            1,
            "inside the request: rolled back with it"
        );
        assert_eq!(stock_left(&db).await?, 2);
    } else {
        assert_eq!(
            count::<Order>(&db).await?,
            2,
            "its own transaction: committed"
        );
        assert_eq!(stock_left(&db).await?, 1);
    }
    Ok(())
}

async fn bump_setup(db: &Db, retries: u32) -> Result<(axum::Router, app::AppState), Error> {
    stock(db, 10).await?;
    Ok(app::router(
        db.clone(),
        PersistLayer::new(db.clone()).retry_idempotent(retries),
    ))
}

/// A `PUT` whose write finds its row changed by another connection since
/// the read is run again, once, and succeeds; without retries it is a 409.
pub async fn idempotent_request_is_retried_on_a_stale_row(db: Db) -> TestResult {
    let (app, state) = bump_setup(&db, 3).await?;
    let (status, body) = call(&app, Method::PUT, "/stock/bump", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    if db.backend() == Backend::Sqlite {
        // Nothing can change the row under SQLite's one writer.
        assert_eq!(state.bumps.load(Ordering::SeqCst), 1);
        assert_eq!(stock_left(&db).await?, 11);
    } else {
        assert_eq!(state.bumps.load(Ordering::SeqCst), 2, "ran twice");
        assert_eq!(
            stock_left(&db).await?,
            10 + 100 + 1,
            "both writes kept, ours once"
        );
    }
    Ok(())
}

/// The same stale row in a `POST`, or with retries off (the default): the
/// request runs once and answers 409.
pub async fn post_is_never_retried(db: Db) -> TestResult {
    let (app, state) = bump_setup(&db, 3).await?;
    if db.backend() == Backend::Sqlite {
        // No stale row can be made inside SQLite's single writer (see
        // above): the POST runs once and succeeds.
        let (status, _) = call(&app, Method::POST, "/stock/bump", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(state.bumps.load(Ordering::SeqCst), 1);
        assert_eq!(stock_left(&db).await?, 11);
        return Ok(());
    }
    let (status, _) = call(&app, Method::POST, "/stock/bump", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(state.bumps.load(Ordering::SeqCst), 1, "a POST runs once");
    assert_eq!(
        stock_left(&db).await?,
        110,
        "only the other connection's write"
    );

    let (app, state) = app::router(db.clone(), PersistLayer::new(db.clone()));
    let (status, _) = call(&app, Method::PUT, "/stock/bump", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "retries are off by default");
    assert_eq!(state.bumps.load(Ordering::SeqCst), 1);
    assert_eq!(stock_left(&db).await?, 210);
    Ok(())
}
