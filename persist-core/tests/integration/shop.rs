//! A shop's checkout, written as a new user would: application errors out
//! of `db.transaction`, and stock and cart quantities changed by column
//! arithmetic in the database instead of read–modify–write.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use persist_core::db::Committed;
use persist_core::prelude::*;
use persist_core::sql::Backend;

use crate::common::TestResult;

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "shop_products")]
pub struct Product {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    #[persist(unique)]
    pub sku: String,
    pub stock: i32,
    pub price_cents: i64,
    pub discount_cents: Option<i64>,
    #[persist(version)]
    pub version: i64,
}

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "shop_orders")]
pub struct Order {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    #[persist(references = "Product")]
    pub product_id: i64,
    pub qty: i32,
}

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "shop_cart_lines")]
pub struct CartLine {
    #[persist(primary_key)]
    pub cart_id: i64,
    #[persist(primary_key)]
    pub product_id: i64,
    pub qty: i32,
    pub note: String,
}

/// The application's error: a domain failure, or persist's.
#[derive(Debug)]
pub enum ShopError {
    OutOfStock,
    /// A failure the application reports as "try later", keeping nothing
    /// of the persist error it came from.
    Busy,
    Db(Error),
}

impl From<Error> for ShopError {
    fn from(e: Error) -> Self {
        ShopError::Db(e)
    }
}

fn product(sku: &str, stock: i32) -> Product {
    Product {
        id: 0,
        sku: sku.into(),
        stock,
        price_cents: 250,
        discount_cents: None,
        version: 0,
    }
}

async fn setup(db: &Db) -> Result<Product, Error> {
    db.create_tables::<(Product, Order, CartLine)>().await?;
    let s = db.session().await?;
    let p = s.insert(product("tea", 5)).await?;
    s.commit().await?;
    Ok(p)
}

async fn stored<E: Entity>(db: &Db) -> Result<Vec<E>, Error> {
    let s = db.session().await?;
    let rows = s.all::<E>().await?;
    s.rollback().await?;
    Ok(rows)
}

fn shop_err(e: ShopError) -> Error {
    match e {
        ShopError::Db(e) => e,
        other => Error::Invalid(format!("unexpected {other:?}")),
    }
}

/// One checkout: take `qty` of the stock atomically, or fail with the
/// domain error; then record the order. All or nothing.
async fn checkout(db: &Db, product_id: i64, qty: i32) -> Result<Order, ShopError> {
    db.transaction(|s| async move {
        let taken = s
            .update_all::<Product>()
            .filter(Product::ID.eq(product_id).and(Product::STOCK.ge(qty)))
            .set_expr(Product::STOCK, Product::STOCK.sub(qty))
            .await?;
        if taken == 0 {
            return Err(ShopError::OutOfStock);
        }
        let order = s
            .insert(Order {
                id: 0,
                product_id,
                qty,
            })
            .await?;
        Ok(order)
    })
    .await
}

/// A domain error rolls back what the closure wrote and comes out as
/// itself, with one attempt.
pub async fn app_error_rolls_back_and_comes_out(db: Db) -> TestResult {
    let p = setup(&db).await?;
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let out: Result<(), ShopError> = db
        .transaction(move |s| {
            c.fetch_add(1, Ordering::SeqCst);
            async move {
                s.insert(Order {
                    id: 0,
                    product_id: p.id,
                    qty: 1,
                })
                .await?;
                Err(ShopError::OutOfStock)
            }
        })
        .await;
    assert!(matches!(out, Err(ShopError::OutOfStock)), "{out:?}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "a domain error is not retried"
    );
    assert!(stored::<Order>(&db).await?.is_empty(), "nothing committed");
    Ok(())
}

/// Runs `change` on a copy of `p` in `db.transaction_with`; on the first
/// attempt the copy is a version behind the stored row (0 against 1), so
/// that attempt meets a stale row.
async fn stale_on_first_attempt<F, Fut, T>(
    db: &Db,
    p: &Product,
    change: F,
) -> Result<Committed<T>, Error>
where
    F: Fn(Session, Product) -> Fut,
    Fut: std::future::Future<Output = Result<T, ShopError>>,
{
    let calls = AtomicU32::new(0);
    db.transaction_with(SessionOptions::new(), |s| {
        let mut copy = p.clone();
        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            copy.version = 0;
        }
        change(s, copy)
    })
    .await
    .map_err(shop_err)
}

/// A stale row met inside the closure is retried even when the closure
/// turned it into an error of its own that keeps nothing of it.
pub async fn app_error_after_a_stale_row_is_retried(db: Db) -> TestResult {
    let p = setup(&db).await?;
    let committed = stale_on_first_attempt(&db, &p, |s, mut copy| async move {
        copy.stock += 10;
        s.update(&mut copy)?;
        s.flush().await.map_err(|_| ShopError::Busy)?;
        Ok(copy.stock)
    })
    .await?;
    assert_eq!((committed.value, committed.attempts), (15, 2));
    assert_eq!(stored::<Product>(&db).await?[0].stock, 15);
    Ok(())
}

/// A stale row found at commit (the closure returned `Ok`) is retried with
/// the application's error type too.
pub async fn stale_at_commit_is_retried_with_app_errors(db: Db) -> TestResult {
    let p = setup(&db).await?;
    let committed = stale_on_first_attempt(&db, &p, |s, mut copy| async move {
        copy.stock -= 1;
        s.update(&mut copy)?;
        Ok(())
    })
    .await?;
    assert_eq!(committed.attempts, 2);
    assert_eq!(stored::<Product>(&db).await?[0].stock, 4);
    Ok(())
}

/// A persist error that a new attempt cannot cure is not retried.
pub async fn app_error_after_a_unique_violation_is_not_retried(db: Db) -> TestResult {
    setup(&db).await?;
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let out: Result<(), ShopError> = db
        .transaction(move |s| {
            c.fetch_add(1, Ordering::SeqCst);
            async move {
                s.insert(product("tea", 1)).await?;
                Ok(())
            }
        })
        .await;
    assert!(
        matches!(out, Err(ShopError::Db(Error::UniqueViolation { .. }))),
        "{out:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    Ok(())
}

/// Twenty buyers for five units: the decrement in the database sells
/// exactly five, and the other fifteen get the domain error.
pub async fn atomic_decrement_sells_exactly_the_stock(db: Db) -> TestResult {
    let p = setup(&db).await?;
    let buyers: Vec<_> = (0..20)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { checkout(&db, p.id, 1).await })
        })
        .collect();
    let (mut sold, mut short) = (0, 0);
    for b in buyers {
        match b.await.expect("buyer") {
            Ok(_) => sold += 1,
            Err(ShopError::OutOfStock) => short += 1,
            Err(e) => return Err(shop_err(e)),
        }
    }
    assert_eq!((sold, short), (5, 15));
    let products = stored::<Product>(&db).await?;
    assert_eq!(products[0].stock, 0);
    // Each decrement bumped the version, as any bulk update does.
    assert_eq!(products[0].version, 6);
    assert_eq!(stored::<Order>(&db).await?.len(), 5);
    Ok(())
}

/// The checkout sends two statements: the conditional decrement and the
/// order's insert — no read of the product.
pub async fn checkout_sends_no_read(db: Db) -> TestResult {
    let p = setup(&db).await?;
    let before = db.statement_count();
    checkout(&db, p.id, 2).await.map_err(shop_err)?;
    assert_eq!(db.statement_count() - before, 2);
    let short = checkout(&db, p.id, 4).await;
    assert!(matches!(short, Err(ShopError::OutOfStock)), "{short:?}");
    assert_eq!(stored::<Product>(&db).await?[0].stock, 3);
    Ok(())
}

/// Chained arithmetic applies left to right, columns of the row take part,
/// `NULL` stays `NULL`, and the count is of rows matched.
pub async fn expressions_chain_and_count_matched_rows(db: Db) -> TestResult {
    let p = setup(&db).await?;
    let s = db.session().await?;
    let mut q = s.insert(product("jam", 2)).await?;
    q.discount_cents = Some(10);
    s.update(&mut q)?;
    let n = s
        .update_all::<Product>()
        .set_expr(Product::PRICE_CENTS, Product::PRICE_CENTS.mul(2).add(5))
        .set_expr(Product::DISCOUNT_CENTS, Product::DISCOUNT_CENTS.add(1))
        .await?;
    assert_eq!(n, 2);
    // `stock = stock + 0` changes no value: still counted as matched.
    let same = s
        .update_all::<Product>()
        .filter(Product::ID.eq(p.id))
        .set_expr(Product::STOCK, Product::STOCK.add(0))
        .await?;
    assert_eq!(same, 1, "rows matched, not rows changed");
    // `stock = stock + price` (another column of the row).
    s.update_all::<Product>()
        .filter(Product::ID.eq(q.id))
        .set_expr(
            Product::PRICE_CENTS,
            Product::PRICE_CENTS.sub(0).add_column(Product::PRICE_CENTS),
        )
        .await?;
    s.commit().await?;
    let mut rows = stored::<Product>(&db).await?;
    rows.sort_by_key(|r| r.id);
    assert_eq!(rows[0].price_cents, 505);
    assert_eq!(rows[0].discount_cents, None, "NULL + 1 is NULL");
    assert_eq!(rows[1].price_cents, 1010);
    assert_eq!(rows[1].discount_cents, Some(11));
    Ok(())
}

/// An integer overflow in an expression is the database's error, and the
/// session is failed as after any failed write.
pub async fn expression_overflow_is_an_error(db: Db) -> TestResult {
    let p = setup(&db).await?;
    let s = db.session().await?;
    let out = s
        .update_all::<Product>()
        .filter(Product::ID.eq(p.id))
        .set_expr(Product::STOCK, Product::STOCK.add(i32::MAX))
        .await;
    if db.backend() == Backend::Sqlite {
        // SQLite's integers are 64-bit: the sum is stored; reading it back
        // into `i32` is the decode error.
        out?;
        s.commit().await?;
        let s = db.session().await?;
        let read = s.find::<Product>(&p.id).await;
        assert!(matches!(read, Err(Error::Decode { .. })), "{read:?}");
        return Ok(());
    }
    assert!(out.is_err(), "{out:?}");
    assert!(s.is_failed());
    s.rollback().await?;
    assert_eq!(stored::<Product>(&db).await?[0].stock, 5);
    Ok(())
}

/// The cart line adds to its quantity on conflict, and the upsert answers
/// the row as stored.
pub async fn upsert_adds_to_the_stored_quantity(db: Db) -> TestResult {
    setup(&db).await?;
    let add = |qty: i32, note: &str| {
        let line = CartLine {
            cart_id: 7,
            product_id: 1,
            qty,
            note: note.into(),
        };
        let db = db.clone();
        async move {
            let s = db.session().await?;
            let before = s.statement_count();
            let stored = s
                .upsert_with(line)
                .on_conflict_set(CartLine::QTY, CartLine::QTY.add(qty))
                .await?;
            let sent = s.statement_count() - before;
            // The identity map holds the stored row.
            assert_eq!(s.find::<CartLine>(&(7, 1)).await?, Some(stored.clone()));
            assert_eq!(s.statement_count() - before, sent);
            s.commit().await?;
            Ok::<_, Error>((stored, sent))
        }
    };
    let (first, sent) = add(2, "first").await?;
    assert_eq!((first.qty, first.note.as_str()), (2, "first"));
    // PostgreSQL and SQLite answer the row with RETURNING; MySQL reads it.
    let expected = if db.backend() == Backend::MySql { 2 } else { 1 };
    assert_eq!(sent, expected);
    let (second, _) = add(3, "second").await?;
    assert_eq!((second.qty, second.note.as_str()), (5, "second"));
    assert_eq!(stored::<CartLine>(&db).await?, [second]);
    Ok(())
}

/// On an entity with an auto-increment key the conflict is on its unique
/// field: the stored row, with its own id, comes back.
pub async fn upsert_on_a_unique_field_answers_the_stored_row(db: Db) -> TestResult {
    let p = setup(&db).await?;
    let s = db.session().await?;
    let restock = product("tea", 7);
    let row = s
        .upsert_with(restock)
        .on_conflict_set(Product::STOCK, Product::STOCK.add(7))
        .await?;
    assert_eq!((row.id, row.stock), (p.id, 12));
    let fresh = s.upsert_with(product("honey", 3)).await?;
    assert!(fresh.id > p.id);
    assert_eq!(fresh.stock, 3);
    s.commit().await?;
    let mut rows = stored::<Product>(&db).await?;
    rows.sort_by_key(|r| r.id);
    assert_eq!(
        rows.iter()
            .map(|r| (r.sku.as_str(), r.stock))
            .collect::<Vec<_>>(),
        [("tea", 12), ("honey", 3)]
    );
    Ok(())
}

/// The conflict target cannot be set on conflict: a clear error, nothing
/// sent.
pub async fn upsert_refuses_to_set_its_target(db: Db) -> TestResult {
    setup(&db).await?;
    let s = db.session().await?;
    let before = db.statement_count();
    let line = CartLine {
        cart_id: 1,
        product_id: 1,
        qty: 1,
        note: String::new(),
    };
    let out = s
        .upsert_with(line)
        .on_conflict_set(CartLine::CART_ID, CartLine::CART_ID.add(1))
        .await;
    assert!(
        matches!(&out, Err(Error::Invalid(m)) if m.contains("cart_id")),
        "{out:?}"
    );
    assert_eq!(db.statement_count(), before);
    Ok(())
}
