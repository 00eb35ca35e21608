//! The store beside [`PersistLayer`]: a request's own writes and its web
//! session, each committed, and what the request sees of the stored record.

use axum::Router;
use axum::extract::Path;
use axum::routing::post;
use http::StatusCode;
use persist_axum::store::SessionRecord;
use persist_axum::{PersistLayer, Tx};
use persist_core::prelude::*;
use tower_sessions::{Expiry, Session as WebSession, SessionManagerLayer};

use crate::common::TestResult;
use crate::support::{both, call, row, store};

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "store_notes")]
pub struct Note {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub n: i64,
}

/// Writes a note in the request's unit of work, answers what the store
/// had saved of the web session before this request, then sets `n`.
async fn note(Tx(s): Tx, web: WebSession, Path(v): Path<i64>) -> Result<String, StatusCode> {
    let fail = |_| StatusCode::INTERNAL_SERVER_ERROR;
    let before = match web.id() {
        Some(id) => s
            .find::<SessionRecord>(&id.to_string())
            .await
            .map_err(fail)?
            .map(|r| r.data.len()),
        None => None,
    };
    s.insert(Note { id: 0, n: v }).await.map_err(fail)?;
    web.insert("n", v)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(format!("{before:?}"))
}

pub async fn beside_the_persist_layer(db: Db) -> TestResult {
    both(db, "beside_the_persist_layer", |db, _| async move {
        db.create_tables::<Note>().await?;
        let store = store(&db).await?;
        // The session layer outside the persist layer: tower-sessions saves
        // after the request's transaction has committed.
        let app = Router::new()
            .route("/note/{v}", post(note))
            .layer(PersistLayer::new(db.clone()))
            .layer(
                SessionManagerLayer::new(store)
                    .with_secure(false)
                    .with_expiry(Expiry::OnInactivity(time::Duration::minutes(10))),
            );
        let r = call(&app, "POST", "/note/1", None).await;
        assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "None"));
        let cookie = r.cookie().expect("cookie");
        let id = r.id().expect("id");
        let saved = row(&db, &id).await?.expect("the session row");
        // The second request sees the record as the first one left it.
        let r = call(&app, "POST", "/note/2", Some(&cookie)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, format!("{:?}", Some(saved.data.len())));
        let s = db.session_with(SessionOptions::new().read_only()).await?;
        assert_eq!(s.query::<Note>().count().await?, 2);
        s.commit().await?;
        let data: std::collections::HashMap<String, serde_json::Value> =
            rmp_serde::from_slice(&row(&db, &id).await?.expect("the row").data)
                .map_err(|e| Error::Invalid(e.to_string()))?;
        assert_eq!(data["n"], serde_json::json!(2));
        Ok(())
    })
    .await
}
