//! The entity a session is stored in, and the trait that lets an
//! application store sessions in a table of its own naming.

use chrono::{DateTime, Utc};
use persist_core::model::Entity;
use persist_core::query::Column;

/// A table web sessions are kept in: an [`Entity`] with the four columns
/// [`PersistSessionStore`](crate::PersistSessionStore) reads and writes.
///
/// [`SessionRecord`] is the default (`persist_sessions`); declare another
/// with [`session_table!`](crate::session_table) rather than implementing
/// this by hand.
pub trait SessionTable: Entity<Key = String> + std::fmt::Debug {
    /// A row: the session id in its string form, the encoded data, when it
    /// expires, and the principal the application set (if any).
    fn new_row(
        id: String,
        data: Vec<u8>,
        expires_at: DateTime<Utc>,
        principal: Option<String>,
    ) -> Self;

    /// The session id, as tower-sessions prints it (22 characters of
    /// URL-safe base64).
    fn id(&self) -> &str;

    /// The session data, as MessagePack.
    fn data(&self) -> &[u8];

    /// When the session expires.
    fn expires_at(&self) -> DateTime<Utc>;

    /// The principal (user id) stored with the session.
    fn principal(&self) -> Option<&str>;

    /// The `id` column, for filters.
    fn id_column() -> Column<Self, String>;

    /// The `data` column, for updates by key.
    fn data_column() -> Column<Self, Vec<u8>>;

    /// The `expires_at` column, for filters.
    fn expires_at_column() -> Column<Self, DateTime<Utc>>;

    /// The `principal` column, for filters.
    fn principal_column() -> Column<Self, Option<String>>;
}

/// Declares a session table under a name of the application's choosing: a
/// struct with the fields of [`SessionRecord`], its [`Entity`] derive and
/// its [`SessionTable`] implementation.
///
/// ```
/// persist_axum::session_table!(
///     /// Sessions of the admin site, kept apart from the shop's.
///     pub struct AdminSessions = "admin_sessions"
/// );
///
/// # async fn demo(db: persist_core::prelude::Db) {
/// let store = persist_axum::PersistSessionStore::<AdminSessions>::with_table(db);
/// # }
/// ```
#[macro_export]
macro_rules! session_table {
    ($(#[$attr:meta])* $vis:vis struct $name:ident = $table:literal) => {
        $(#[$attr])*
        #[derive($crate::__private::persist_core::model::Entity, Clone, Debug)]
        #[persist(table = $table, crate = "::persist_axum::__private::persist_core")]
        $vis struct $name {
            /// The session id, as tower-sessions prints it.
            #[persist(primary_key)]
            pub id: ::std::string::String,
            /// The session data, as MessagePack.
            pub data: ::std::vec::Vec<u8>,
            /// When the session expires.
            #[persist(index)]
            pub expires_at: $crate::__private::persist_core::__private::DateTime<
                $crate::__private::persist_core::__private::Utc,
            >,
            /// The principal (user id) the application stored in the session.
            #[persist(index)]
            pub principal: ::std::option::Option<::std::string::String>,
        }

        $crate::__session_table_impl!($name);
    };
}

/// The [`SessionTable`] implementation of an entity declared with the
/// session fields; used by [`session_table!`](crate::session_table).
#[doc(hidden)]
#[macro_export]
macro_rules! __session_table_impl {
    ($name:ident) => {
        impl $crate::store::SessionTable for $name {
            fn new_row(
                id: ::std::string::String,
                data: ::std::vec::Vec<u8>,
                expires_at: $crate::__private::persist_core::__private::DateTime<
                    $crate::__private::persist_core::__private::Utc,
                >,
                principal: ::std::option::Option<::std::string::String>,
            ) -> Self {
                $name {
                    id,
                    data,
                    expires_at,
                    principal,
                }
            }
            fn id(&self) -> &str {
                &self.id
            }
            fn data(&self) -> &[u8] {
                &self.data
            }
            fn expires_at(
                &self,
            ) -> $crate::__private::persist_core::__private::DateTime<
                $crate::__private::persist_core::__private::Utc,
            > {
                self.expires_at
            }
            fn principal(&self) -> ::std::option::Option<&str> {
                self.principal.as_deref()
            }
            fn id_column()
            -> $crate::__private::persist_core::query::Column<Self, ::std::string::String> {
                $name::ID
            }
            fn data_column()
            -> $crate::__private::persist_core::query::Column<Self, ::std::vec::Vec<u8>> {
                $name::DATA
            }
            fn expires_at_column() -> $crate::__private::persist_core::query::Column<
                Self,
                $crate::__private::persist_core::__private::DateTime<
                    $crate::__private::persist_core::__private::Utc,
                >,
            > {
                $name::EXPIRES_AT
            }
            fn principal_column() -> $crate::__private::persist_core::query::Column<
                Self,
                ::std::option::Option<::std::string::String>,
            > {
                $name::PRINCIPAL
            }
        }
    };
}

/// A web session as stored by [`PersistSessionStore`](crate::PersistSessionStore),
/// in the table `persist_sessions`.
///
/// | column | type | |
/// |---|---|---|
/// | `id` | text (MySQL `varchar(255)`) | primary key: the tower-sessions id |
/// | `data` | blob / bytea / longblob | the data map, as MessagePack |
/// | `expires_at` | datetime / timestamptz / datetime(6) | indexed |
/// | `principal` | nullable text (MySQL `varchar(255)`) | indexed: the user id |
#[derive(persist_core::model::Entity, Clone, Debug)]
#[persist(table = "persist_sessions", crate = "::persist_core")]
pub struct SessionRecord {
    /// The session id, as tower-sessions prints it.
    #[persist(primary_key)]
    pub id: String,
    /// The session data, as MessagePack.
    pub data: Vec<u8>,
    /// When the session expires.
    #[persist(index)]
    pub expires_at: DateTime<Utc>,
    /// The principal (user id) the application stored in the session.
    #[persist(index)]
    pub principal: Option<String>,
}

crate::__session_table_impl!(SessionRecord);
