//! The names of the `#[persist(…)]` keys.

use std::fmt::{self, Display};

use syn::{Ident, Path};

/// One attribute key, compared against parsed paths.
#[derive(Copy, Clone, PartialEq, Eq)]
pub struct Symbol(pub &'static str);

/// The attribute every key lives under.
pub const PERSIST: Symbol = Symbol("persist");

// Container keys.
pub const TABLE: Symbol = Symbol("table");
pub const RENAME_ALL: Symbol = Symbol("rename_all");
pub const HAS_MANY: Symbol = Symbol("has_many");
pub const HAS_ONE: Symbol = Symbol("has_one");
pub const MANY_TO_MANY: Symbol = Symbol("many_to_many");
/// Also on a `DbEnum` enum.
pub const CRATE: Symbol = Symbol("crate");

// Relation keys.
pub const BY: Symbol = Symbol("by");
pub const TO: Symbol = Symbol("to");
pub const THROUGH: Symbol = Symbol("through");
pub const ON_DELETE: Symbol = Symbol("on_delete");
pub const CACHE: Symbol = Symbol("cache");
pub const HOOKS: Symbol = Symbol("hooks");
pub const AUDIT: Symbol = Symbol("audit");
pub const TTL: Symbol = Symbol("ttl");

// Field keys.
pub const PRIMARY_KEY: Symbol = Symbol("primary_key");
pub const AUTO_INCREMENT: Symbol = Symbol("auto_increment");
pub const COLUMN: Symbol = Symbol("column");
pub const UNIQUE: Symbol = Symbol("unique");
pub const UNIQUE_LIVE: Symbol = Symbol("unique_live");
pub const INDEX: Symbol = Symbol("index");
pub const REFERENCES: Symbol = Symbol("references");
pub const VERSION: Symbol = Symbol("version");
pub const JSON: Symbol = Symbol("json");
pub const SKIP: Symbol = Symbol("skip");
pub const DEFAULT: Symbol = Symbol("default");
pub const CREATED_AT: Symbol = Symbol("created_at");
pub const UPDATED_AT: Symbol = Symbol("updated_at");
pub const SOFT_DELETE: Symbol = Symbol("soft_delete");

// Enum variant keys.
pub const RENAME: Symbol = Symbol("rename");

/// serde's attribute, read by `#[derive(DbEnum)]` under `rename_all = "serde"`.
pub const SERDE: Symbol = Symbol("serde");
/// serde's `rename(serialize = "…")` / `rename_all(serialize = "…")`.
pub const SERIALIZE: Symbol = Symbol("serialize");

/// Keys accepted on an entity struct, in the order error messages list them.
pub const CONTAINER_KEYS: &[Symbol] = &[
    TABLE,
    RENAME_ALL,
    HAS_MANY,
    HAS_ONE,
    MANY_TO_MANY,
    CACHE,
    HOOKS,
    AUDIT,
    CRATE,
];

/// Keys inside `cache(…)`.
pub const CACHE_KEYS: &[Symbol] = &[TTL];

/// Keys accepted inside `has_many(…)`, `has_one(…)` and `many_to_many(…)`.
pub const RELATION_KEYS: &[Symbol] = &[BY, TO, THROUGH, ON_DELETE];

/// Keys accepted on an entity field.
pub const FIELD_KEYS: &[Symbol] = &[
    PRIMARY_KEY,
    AUTO_INCREMENT,
    COLUMN,
    UNIQUE,
    UNIQUE_LIVE,
    INDEX,
    REFERENCES,
    VERSION,
    JSON,
    SKIP,
    DEFAULT,
    CREATED_AT,
    UPDATED_AT,
    SOFT_DELETE,
];

/// Keys accepted on a `DbEnum` enum.
pub const ENUM_KEYS: &[Symbol] = &[RENAME_ALL, CRATE];

/// Keys accepted on a `DbEnum` variant.
pub const VARIANT_KEYS: &[Symbol] = &[RENAME];

/// Keys accepted on a `#[derive(Field)]` newtype.
pub const NEWTYPE_KEYS: &[Symbol] = &[CRATE];

/// `a, b, c` for an error message.
pub fn list(keys: &[Symbol]) -> String {
    keys.iter().map(|k| k.0).collect::<Vec<_>>().join(", ")
}

impl PartialEq<Symbol> for Ident {
    fn eq(&self, word: &Symbol) -> bool {
        self == word.0
    }
}

impl PartialEq<Symbol> for &Ident {
    fn eq(&self, word: &Symbol) -> bool {
        *self == word.0
    }
}

impl PartialEq<Symbol> for Path {
    fn eq(&self, word: &Symbol) -> bool {
        self.is_ident(word.0)
    }
}

impl PartialEq<Symbol> for &Path {
    fn eq(&self, word: &Symbol) -> bool {
        self.is_ident(word.0)
    }
}

impl Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}
