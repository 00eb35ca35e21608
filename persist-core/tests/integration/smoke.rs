use persist_core::prelude::*;

use crate::common::TestResult;
use crate::model::*;

pub async fn roundtrip(db: Db) -> TestResult {
    db.create_tables::<(Account, Customer, OrderLine)>().await?;
    let s = db.session().await?;
    let alice = s
        .insert(Customer {
            id: 0,
            email: "a@x".into(),
            name: "Alice".into(),
        })
        .await?;
    assert!(alice.id > 0);
    let mut acc = s.insert(Account::new("DE01", alice.id, 100)).await?;
    assert_eq!(acc.version, 1);
    acc.balance_cents += 5;
    s.update(&mut acc)?;
    let got = Account::repo(&s)
        .find_by_iban("DE01")
        .await?
        .ok_or(Error::NotFound)?;
    assert_eq!(got.balance_cents, 105);
    assert_eq!(got.version, 2);
    let many = s
        .insert_many(vec![
            Customer {
                id: 0,
                email: "b@x".into(),
                name: "B".into(),
            },
            Customer {
                id: 0,
                email: "c@x".into(),
                name: "C".into(),
            },
        ])
        .await?;
    assert_eq!(many[1].id, many[0].id + 1);
    s.add(OrderLine {
        order_id: 1,
        line_no: 2,
        sku: "x".into(),
        qty: 3,
    })?;
    assert_eq!(s.find::<OrderLine>(&(1, 2)).await?.map(|l| l.qty), Some(3));
    s.commit().await?;
    Ok(())
}
