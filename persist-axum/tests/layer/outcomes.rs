//! How a request's session ends: by the response's status, by an error at
//! commit, and what the layer's options change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::http::{Method, StatusCode};
use persist_axum::{ErrorMapper, PersistLayer, Tx};
use persist_core::prelude::*;
use persist_core::session::Isolation;
use persist_core::sql::Backend;
use serde_json::json;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};

use crate::app::{self, Note, Tables, call, count};
use crate::common::TestResult;

async fn setup(db: &Db, layer: PersistLayer) -> Result<axum::Router, Error> {
    db.create_tables::<Tables>().await?;
    Ok(app::router(db.clone(), layer).0)
}

async fn titles(db: &Db) -> Result<Vec<String>, Error> {
    let s = db.session().await?;
    let mut t: Vec<String> = s
        .query::<Note>()
        .all()
        .await?
        .into_iter()
        .map(|n| n.title)
        .collect();
    s.rollback().await?;
    t.sort();
    Ok(t)
}

pub async fn commit_on_2xx_and_3xx(db: Db) -> TestResult {
    let app = setup(&db, PersistLayer::new(db.clone())).await?;
    let (status, body) = call(&app, Method::POST, "/notes", Some(json!({"title": "a"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        body["id"].as_i64().is_some_and(|id| id > 0),
        "generated id answered: {body}"
    );
    let (status, _) = call(&app, Method::POST, "/notes/redirect/b", None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(titles(&db).await?, ["a", "b"], "both committed");
    let id = body["id"].as_i64().unwrap_or_default();
    let (status, got) = call(&app, Method::GET, &format!("/notes/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["title"], "a");
    Ok(())
}

pub async fn rollback_on_4xx_and_5xx(db: Db) -> TestResult {
    let app = setup(&db, PersistLayer::new(db.clone())).await?;
    for (code, title) in [
        (400, "bad"),
        (404, "missing"),
        (422, "invalid"),
        (500, "broken"),
        (503, "down"),
    ] {
        let (status, _) = call(
            &app,
            Method::POST,
            &format!("/notes/fail/{code}/{title}"),
            None,
        )
        .await;
        assert_eq!(status.as_u16(), code);
    }
    assert!(
        titles(&db).await?.is_empty(),
        "every write was flushed, none committed"
    );
    let (status, _) = call(&app, Method::POST, "/notes/fail/204/kept", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(titles(&db).await?, ["kept"]);
    Ok(())
}

pub async fn commit_error_replaces_the_response(db: Db) -> TestResult {
    let app = setup(&db, PersistLayer::new(db.clone())).await?;
    let (_, body) = call(
        &app,
        Method::POST,
        "/notes",
        Some(json!({"title": "first"})),
    )
    .await;
    let id = body["id"].as_i64().unwrap_or_default();

    // The handler answered 200, but its registered update is stale: the
    // flush at commit fails, and the client sees 409, not 200.
    let (status, body) = call(&app, Method::POST, &format!("/notes/stale/{id}"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("lw_notes")),
        "{body}"
    );
    assert_eq!(
        titles(&db).await?,
        ["first"],
        "the stale edit left the row alone"
    );

    // A registered insert of a duplicate title: unique violation at commit.
    let (status, body) = call(&app, Method::POST, "/notes/dup/first", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(count::<Note>(&db).await?, 1);

    // A missing row answered as `DbError(NotFound)`.
    let (status, body) = call(&app, Method::GET, "/notes/424242", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"error": Error::NotFound.to_string()}));
    Ok(())
}

pub async fn handler_errors_use_the_layers_mapper(db: Db) -> TestResult {
    let mapper = ErrorMapper::new(|e| match e {
        Error::NotFound => StatusCode::GONE,
        Error::Stale { .. } => StatusCode::PRECONDITION_FAILED,
        _ => StatusCode::IM_A_TEAPOT,
    });
    let app = setup(&db, PersistLayer::new(db.clone()).error_mapper(mapper)).await?;
    let (status, body) = call(&app, Method::GET, "/notes/99", None).await;
    assert_eq!(
        status,
        StatusCode::GONE,
        "a handler's DbError is mapped by the layer"
    );
    assert_eq!(body, json!({"error": Error::NotFound.to_string()}));
    let (_, body) = call(&app, Method::POST, "/notes", Some(json!({"title": "x"}))).await;
    let id = body["id"].as_i64().unwrap_or_default();
    let (status, _) = call(&app, Method::POST, &format!("/notes/stale/{id}"), None).await;
    assert_eq!(
        status,
        StatusCode::PRECONDITION_FAILED,
        "an error at commit too"
    );
    let (status, body) = call(&app, Method::POST, "/notes/dup/x", None).await;
    assert_eq!(status, StatusCode::IM_A_TEAPOT);
    assert!(body["error"].is_string());
    Ok(())
}

pub async fn request_without_database_takes_no_connection(db: Db) -> TestResult {
    let app = setup(&db, PersistLayer::new(db.clone())).await?;
    let before = db.connections_acquired();
    for path in ["/ping", "/ping_tx", "/ping", "/ping_tx"] {
        let (status, body) = call(&app, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!("pong"));
    }
    assert_eq!(
        db.connections_acquired(),
        before,
        "no statement, no connection"
    );
    let (status, _) = call(&app, Method::GET, "/notes/1", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(db.connections_acquired(), before + 1, "a read takes one");
    Ok(())
}

pub async fn session_current_is_the_requests_session(db: Db) -> TestResult {
    let app = setup(&db, PersistLayer::new(db.clone())).await?;
    let (status, a) = call(&app, Method::GET, "/current", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(a["tx"], a["current"], "Tx and Session::current agree");
    let (_, b) = call(&app, Method::GET, "/current", None).await;
    assert_ne!(a["tx"], b["tx"], "each request has its own session");
    Ok(())
}

pub async fn read_only_get_cannot_write(db: Db) -> TestResult {
    let layer = PersistLayer::new(db.clone()).read_only_safe_methods(true);
    let app = setup(&db, layer).await?;
    if db.backend() == Backend::Sqlite {
        // SQLite has no read-only transaction: a read-only session is a
        // deferred `BEGIN`, which reads beside a writer instead of queueing
        // for its lock. A writer holds the lock with an uncommitted row…
        let writer = db.session().await?;
        writer
            .insert(app::Note {
                id: 0,
                title: "uncommitted".into(),
                version: 0,
            })
            .await?;
        // …and a GET still answers at once, without that row.
        let (status, _) = call(&app, Method::GET, "/notes/1", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        writer.rollback().await?;
    } else {
        let (status, body) = call(&app, Method::GET, "/write_in_get/nope", None).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert_eq!(
            body,
            json!({"error": "internal error"}),
            "no SQL detail reaches the client"
        );
    }
    assert!(titles(&db).await?.is_empty());
    // A POST is read-write.
    let (status, _) = call(&app, Method::POST, "/notes", Some(json!({"title": "ok"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    Ok(())
}

pub async fn isolation_is_the_layers(db: Db) -> TestResult {
    let layer = PersistLayer::new(db.clone()).isolation(Isolation::Serializable);
    let app = setup(&db, layer).await?;
    let (status, level) = call(&app, Method::GET, "/isolation", None).await;
    assert_eq!(status, StatusCode::OK);
    if db.backend() == Backend::Postgres {
        assert_eq!(level, json!("serializable"));
        let plain = setup(&db, PersistLayer::new(db.clone())).await?;
        let (_, level) = call(&plain, Method::GET, "/isolation", None).await;
        assert_eq!(
            level,
            json!("read committed"),
            "the server's default otherwise"
        );
    }
    Ok(())
}

pub async fn route_without_layer_is_a_500(db: Db) -> TestResult {
    let app = axum::Router::new().route(
        "/tx",
        axum::routing::get(|Tx(_s): Tx| async { "unreachable" }),
    );
    let (status, body) = call(&app, Method::GET, "/tx", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, json!({"error": "internal error"}));
    let _ = db;
    Ok(())
}

/// The fields recorded on `persist.request` spans, by span. One
/// process-wide subscriber: a thread's own would race with the other
/// tests' threads over tracing's per-callsite interest.
#[derive(Default, Clone)]
struct Recorded(Arc<Mutex<HashMap<u64, SpanFields>>>);

/// A span's fields, in the order recorded.
type SpanFields = Vec<(String, String)>;

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
}

impl<S> tracing_subscriber::Layer<S> for Recorded
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: Context<'_, S>) {
        if attrs.metadata().name() == "persist.request" {
            let mut spans = self.0.lock().unwrap_or_else(|p| p.into_inner());
            attrs.record(&mut Fields(spans.entry(id.into_u64()).or_default()));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if ctx
            .metadata(id)
            .is_some_and(|m| m.name() == "persist.request")
        {
            let mut spans = self.0.lock().unwrap_or_else(|p| p.into_inner());
            values.record(&mut Fields(spans.entry(id.into_u64()).or_default()));
        }
    }
}

fn recorded() -> &'static Recorded {
    static RECORDED: OnceLock<Recorded> = OnceLock::new();
    RECORDED.get_or_init(|| {
        let r = Recorded::default();
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(r.clone()))
            .expect("no other global subscriber in this test binary");
        r
    })
}

pub async fn span_records_statements_and_outcome(db: Db) -> TestResult {
    let app = setup(&db, PersistLayer::new(db.clone())).await?;
    let recorded = recorded();
    static N: AtomicU32 = AtomicU32::new(0);
    let path = format!("/two/spanned{}", N.fetch_add(1, Ordering::Relaxed));
    let (status, _) = call(&app, Method::POST, &path, None).await;
    assert_eq!(status, StatusCode::CREATED);
    let spans = recorded.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let fields = spans
        .values()
        .find(|f| f.iter().any(|(n, v)| n == "path" && *v == path))
        .unwrap_or_else(|| panic!("a persist.request span for {path}"));
    let get = |name: &str| {
        fields
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("method").as_deref(), Some("POST"));
    assert_eq!(get("outcome").as_deref(), Some("\"committed\""));
    assert_eq!(get("attempts").as_deref(), Some("1"));
    assert!(get("session").is_some(), "{fields:?}");
    // insert, then the flush's update and insert.
    assert_eq!(get("statements").as_deref(), Some("3"), "{fields:?}");
    Ok(())
}

/// A note whose changes are kept with the revision of their request.
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "audited_notes", audit)]
pub struct AuditedNote {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub title: String,
}

async fn create_audited(
    Tx(s): Tx,
    axum::extract::Path(title): axum::extract::Path<String>,
) -> Result<axum::Json<i64>, persist_axum::DbError> {
    let n = s.insert(AuditedNote { id: 0, title }).await?;
    Ok(axum::Json(n.id))
}

pub async fn on_session_names_the_revision(db: Db) -> TestResult {
    db.create_tables::<AuditedNote>().await?;
    let layer = PersistLayer::new(db.clone()).on_session(|req, s| {
        if let Some(user) = req.headers.get("x-user").and_then(|v| v.to_str().ok()) {
            s.set_actor(user);
        }
        s.set_revision_info(format!("{} {}", req.method, req.uri.path()));
    });
    let app = axum::Router::new()
        .route("/audited/{title}", axum::routing::post(create_audited))
        .layer(layer);
    let mut req = app::request(Method::POST, "/audited/first", None);
    req.headers_mut()
        .insert("x-user", http::HeaderValue::from_static("alice"));
    let resp = tower::ServiceExt::oneshot(app.clone(), req)
        .await
        .unwrap_or_else(|never| match never {});
    let (status, id) = app::read(resp).await;
    assert_eq!(status, StatusCode::OK, "{id}");
    let id = id.as_i64().expect("id");
    // Without the header: no actor, the route still named.
    let (status, _) = call(&app, Method::POST, "/audited/second", None).await;
    assert_eq!(status, StatusCode::OK);

    let s = db.session().await?;
    let versions = s.history::<AuditedNote>(&id).await?;
    assert_eq!(versions.len(), 1);
    let rev = &versions[0].revision;
    assert_eq!(rev.actor.as_deref(), Some("alice"));
    assert_eq!(rev.info.as_deref(), Some("POST /audited/first"));
    let second = s.history::<AuditedNote>(&(id + 1)).await?;
    assert_eq!(second[0].revision.actor, None);
    assert_eq!(
        second[0].revision.info.as_deref(),
        Some("POST /audited/second")
    );
    assert_ne!(second[0].revision.id, rev.id, "a revision per request");
    s.rollback().await?;
    Ok(())
}
