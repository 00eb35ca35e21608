//! `cargo run --example axum_service` — the to-do service of
//! `persist_examples::axum_app`, one persist session per request, on
//! `127.0.0.1:3000` (or `$PORT`) over a SQLite file in the temp directory
//! (or the database at `$DATABASE_URL`).
//!
//! ```text
//! curl -s -XPOST localhost:3000/todos -H 'content-type: application/json' -d '{"title":"write docs"}'
//! curl -s localhost:3000/todos/1
//! curl -s -XPATCH localhost:3000/todos/1 -H 'content-type: application/json' -d '{"done":true,"version":1}'
//! ```

use persist_core::prelude::*;
use persist_examples::axum_app;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) => url,
        Err(_) => {
            let file = std::env::temp_dir().join("persist-axum-service.db");
            format!("sqlite://{}?mode=rwc", file.display())
        }
    };
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p.parse()?,
        Err(_) => 3000,
    };
    let db = Db::connect(&url).await?;
    axum_app::create_schema(&db).await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!(
        "serving on http://{} (database {url}); Ctrl-C stops",
        listener.local_addr()?
    );
    axum::serve(listener, axum_app::router(db.clone()))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    db.close().await;
    Ok(())
}
