//! Validation of the intermediate representation: the rules that need more
//! than one attribute, or a field's type, to decide.

use std::collections::HashMap;

use super::Ctxt;
use super::ast::{self, Entity, Enum};
use super::attr::RelationKind;
use super::symbol::{self, Symbol};

/// Integer types `version` accepts (those `VersionField` is implemented for).
const VERSION_TYPES: &[&str] = &["i16", "i32", "i64", "u8", "u16", "u32"];
/// Integer types `auto_increment` accepts (those `AutoKeyField` is implemented for).
const AUTO_INCREMENT_TYPES: &[&str] = &["i16", "i32", "i64", "u16", "u32", "u64"];
/// Keys that a `json` field cannot have.
const NOT_WITH_JSON: &[Symbol] = &[
    symbol::PRIMARY_KEY,
    symbol::VERSION,
    symbol::UNIQUE,
    symbol::UNIQUE_LIVE,
    symbol::INDEX,
    symbol::REFERENCES,
    symbol::AUTO_INCREMENT,
    symbol::SOFT_DELETE,
];
/// The largest composite key persist-core implements `Key` for.
const MAX_KEY_FIELDS: usize = 4;

/// Validates an entity, recording every violation.
pub fn check_entity(cx: &Ctxt, entity: &Entity<'_>) {
    check_relations(cx, entity);
    let key_count = entity
        .fields
        .iter()
        .filter(|f| f.attrs.primary_key.is_some())
        .count();
    if key_count == 0 {
        cx.error_spanned_by(
            entity.ident,
            "#[derive(Entity)] needs a primary key: mark a field #[persist(primary_key)]",
        );
    }

    let mut version_seen = false;
    let mut created_seen = false;
    let mut updated_seen = false;
    let mut soft_delete_seen = false;
    let has_soft_delete = entity
        .fields
        .iter()
        .any(|f| f.attrs.soft_delete.is_some() && f.attrs.skip.is_none());
    let mut keys_seen = 0;
    let mut columns: HashMap<&str, &ast::Field<'_>> = HashMap::new();

    for field in &entity.fields {
        let attrs = &field.attrs;
        if attrs.skip.is_some() {
            for (key, span) in attrs.keys_besides_skip() {
                cx.error_at(span, format!("`skip` cannot be combined with `{key}`"));
            }
            continue;
        }

        if let Some(json) = attrs.json {
            let present = attrs.keys_besides_skip();
            for key in NOT_WITH_JSON {
                if present.iter().any(|(k, _)| k == key) {
                    cx.error_at(json, format!("`json` cannot be combined with `{key}`"));
                }
            }
        }

        if let Some(pk) = attrs.primary_key {
            keys_seen += 1;
            if ast::is_option(field.ty) {
                cx.error_spanned_by(field.ty, "a primary key field cannot be an `Option`");
            }
            if keys_seen == MAX_KEY_FIELDS + 1 {
                cx.error_at(
                    pk,
                    format!("a composite primary key can have at most {MAX_KEY_FIELDS} fields"),
                );
            }
        }

        if let Some(auto) = attrs.auto_increment {
            if attrs.primary_key.is_none() {
                cx.error_at(
                    auto,
                    "`auto_increment` needs `primary_key` on the same field",
                );
            } else if key_count > 1 {
                cx.error_at(
                    auto,
                    "`auto_increment` cannot be used with a composite primary key",
                );
            }
            if attrs.json.is_none() && !ast::is_integer(field.ty, AUTO_INCREMENT_TYPES) {
                cx.error_spanned_by(
                    field.ty,
                    format!(
                        "`auto_increment` needs an integer field (one of: {})",
                        AUTO_INCREMENT_TYPES.join(", ")
                    ),
                );
            }
        }

        if let Some(version) = attrs.version {
            if version_seen {
                cx.error_at(version, "only one field can be `version`");
            }
            version_seen = true;
            if attrs.json.is_none() && !ast::is_integer(field.ty, VERSION_TYPES) {
                cx.error_spanned_by(
                    field.ty,
                    format!(
                        "`version` needs an integer field (one of: {})",
                        VERSION_TYPES.join(", ")
                    ),
                );
            }
        }

        if let Some(created) = attrs.created_at {
            if created_seen {
                cx.error_at(created, "only one field can be `created_at`");
            }
            created_seen = true;
        }
        if let Some(updated) = attrs.updated_at {
            if updated_seen {
                cx.error_at(updated, "only one field can be `updated_at`");
            }
            updated_seen = true;
        }
        if let Some(live) = attrs.unique_live {
            if !has_soft_delete {
                cx.error_at(
                    live,
                    "`unique_live` needs a `soft_delete` field in the entity: it makes the value unique among the rows not soft-deleted",
                );
            } else if attrs.unique.is_some() || attrs.primary_key.is_some() {
                cx.error_at(
                    live,
                    "`unique_live` cannot be combined with `unique` or `primary_key`, which hold the value for soft-deleted rows too",
                );
            }
        }
        if let Some(soft) = attrs.soft_delete {
            if soft_delete_seen {
                cx.error_at(soft, "only one field can be `soft_delete`");
            }
            soft_delete_seen = true;
            if attrs.primary_key.is_some() || attrs.version.is_some() {
                cx.error_at(
                    soft,
                    "`soft_delete` needs a field of its own: a nullable timestamp such as `deleted_at: Option<DateTime<Utc>>`",
                );
            } else if !ast::is_option(field.ty) {
                cx.error_spanned_by(
                    field.ty,
                    "`soft_delete` needs an `Option` of a timestamp: `Option<DateTime<Utc>>` or `Option<NaiveDateTime>`",
                );
            }
        }

        if let Some(first) = columns.insert(&field.column, field) {
            let msg = format!(
                "column `{}` is already used by field `{}`",
                field.column, first.name
            );
            match &attrs.column {
                Some(lit) => cx.error_spanned_by(lit, msg),
                None => cx.error_spanned_by(field.ident, msg),
            }
        }
    }
}

/// Validates the relations declared on the container.
fn check_relations(cx: &Ctxt, entity: &Entity<'_>) {
    let mut targets: HashMap<String, &syn::Type> = HashMap::new();
    for rel in &entity.relations {
        let name = rel
            .key
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        if rel.by.is_none() {
            cx.error_spanned_by(
                &rel.key,
                format!(
                    "`{name}` needs `by = \"field\"`: the foreign-key field that references `{}`",
                    entity.name
                ),
            );
        }
        match rel.kind {
            RelationKind::ManyToMany => {
                if rel.through.is_none() {
                    cx.error_spanned_by(
                        &rel.key,
                        "`many_to_many` needs `through = \"JoinEntity\"`",
                    );
                }
                if rel.to.is_none() {
                    cx.error_spanned_by(
                        &rel.key,
                        "`many_to_many` needs `to = \"field\"`: the join entity's field that references the target",
                    );
                }
            }
            RelationKind::HasMany | RelationKind::HasOne => {
                if let Some((lit, _)) = &rel.through {
                    cx.error_spanned_by(
                        lit,
                        format!("`through` is only for `many_to_many`, not `{name}`"),
                    );
                }
                if let Some(lit) = &rel.to {
                    cx.error_spanned_by(
                        lit,
                        format!("`to` is only for `many_to_many`, not `{name}`"),
                    );
                }
            }
        }
        let key = quote::ToTokens::to_token_stream(&rel.target).to_string();
        if targets.insert(key, &rel.target).is_some() {
            cx.error_spanned_by(
                &rel.target,
                "a second relation to this entity: declare one relation per target and load others with `load_children_by`",
            );
        }
    }
}

/// Validates a `DbEnum`, recording every violation.
pub fn check_enum(cx: &Ctxt, input: &Enum<'_>) {
    let mut seen: HashMap<&str, &syn::Ident> = HashMap::new();
    for variant in &input.variants {
        if let Some(first) = seen.insert(&variant.stored, variant.ident) {
            let msg = format!(
                "variant `{}` is already stored as `{}`",
                first, variant.stored
            );
            match &variant.attrs.rename {
                Some(lit) => cx.error_spanned_by(lit, msg),
                None => cx.error_spanned_by(variant.ident, msg),
            }
        }
    }
}
