//! Parsing of the `#[persist(…)]` attributes into typed values.
//!
//! Every key is parsed even after an error, so that one build reports all
//! of them; unknown keys are answered with the list of valid ones.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, ExprLit, Lit, LitStr, Token};

use super::Ctxt;
use super::case::RenameRule;
use super::symbol::{self, Symbol};

/// Attributes of an entity struct.
#[derive(Default)]
pub struct Container {
    /// `table = "…"`.
    pub table: Option<LitStr>,
    /// `rename_all = "…"`.
    pub rename_all: Option<RenameRule>,
    /// `has_many(…)`, `has_one(…)`, `many_to_many(…)`, in order.
    pub relations: Vec<Relation>,
    /// `cache(ttl = "60s")`: the row TTL in the shared cache, in milliseconds.
    pub cache_ttl_ms: Option<u64>,
    /// `crate = "path"`: the path generated code names persist-core by.
    pub crate_path: Option<syn::Path>,
    /// `hooks`: the entity implements `Hooks`.
    pub hooks: Flag,
    /// `audit`: the entity keeps a history table.
    pub audit: Flag,
}

/// Which relation a container key declares.
#[derive(Copy, Clone, PartialEq, Eq)]
pub enum RelationKind {
    /// `has_many(Child, by = "fk_field")`.
    HasMany,
    /// `has_one(Child, by = "fk_field")`.
    HasOne,
    /// `many_to_many(Other, through = "Join", by = "fk_field", to = "other_fk_field")`.
    ManyToMany,
}

/// `on_delete = "…"`.
#[derive(Copy, Clone, PartialEq, Eq)]
pub enum OnDelete {
    /// `"no_action"` (the default).
    NoAction,
    /// `"cascade"`.
    Cascade,
    /// `"set_null"`.
    SetNull,
}

impl OnDelete {
    const VALUES: &'static str = "cascade, set_null, no_action";

    fn from_str(s: &str) -> Option<Self> {
        match s {
            "cascade" => Some(OnDelete::Cascade),
            "set_null" => Some(OnDelete::SetNull),
            "no_action" => Some(OnDelete::NoAction),
            _ => None,
        }
    }
}

/// One relation declared on the container.
pub struct Relation {
    /// The key's name (`has_many`, …), for spans and messages.
    pub key: syn::Path,
    /// Which relation.
    pub kind: RelationKind,
    /// The related entity type.
    pub target: syn::Type,
    /// `by = "field"`: the foreign-key field referencing the declaring entity.
    pub by: Option<LitStr>,
    /// `to = "field"`: the join entity's field referencing the target.
    pub to: Option<LitStr>,
    /// `through = "Type"`: the join entity.
    pub through: Option<(LitStr, syn::Type)>,
    /// `on_delete = "…"`.
    pub on_delete: Option<(LitStr, OnDelete)>,
}

/// A flag key: the span of its name where present.
pub type Flag = Option<Span>;

/// Attributes of an entity field.
#[derive(Default)]
pub struct Field {
    /// `primary_key`.
    pub primary_key: Flag,
    /// `auto_increment`.
    pub auto_increment: Flag,
    /// `column = "…"`.
    pub column: Option<LitStr>,
    /// `unique`.
    pub unique: Flag,
    /// `unique_live`: unique among the rows not soft-deleted.
    pub unique_live: Flag,
    /// `index`.
    pub index: Flag,
    /// `references = "Type"`: the literal and the type parsed from it (with
    /// the literal's span).
    pub references: Option<(LitStr, syn::Type)>,
    /// `version`.
    pub version: Flag,
    /// `json`.
    pub json: Flag,
    /// `skip`.
    pub skip: Flag,
    /// `default = "SQL expression"`.
    pub default: Option<LitStr>,
    /// `created_at`.
    pub created_at: Flag,
    /// `updated_at`.
    pub updated_at: Flag,
    /// `soft_delete`.
    pub soft_delete: Flag,
}

/// Attributes of a `DbEnum` enum.
#[derive(Default)]
pub struct Enum {
    /// `rename_all = "…"`.
    pub rename_all: Option<EnumNames>,
    /// `crate = "path"`: the path generated code names persist-core by.
    pub crate_path: Option<syn::Path>,
}

/// Where the stored names of a `DbEnum`'s variants come from.
#[derive(Copy, Clone)]
pub enum EnumNames {
    /// `rename_all = "snake_case"` and the other case rules.
    Rule(RenameRule),
    /// `rename_all = "serde"`: serde's `rename_all` on the enum and `rename`
    /// on each variant, so that the stored text is the serialized string.
    Serde,
}

/// Attributes of a `#[derive(Field)]` newtype.
#[derive(Default)]
pub struct Newtype {
    /// `crate = "path"`: the path generated code names persist-core by.
    pub crate_path: Option<syn::Path>,
}

/// The names serde gives an enum and its variants (`rename_all`, `rename`;
/// the `serialize` form where both directions are given).
#[derive(Default)]
pub struct SerdeNames {
    /// `#[serde(rename_all = "…")]` on the enum.
    pub rename_all: Option<RenameRule>,
    /// `#[serde(rename = "…")]` on a variant.
    pub rename: Option<LitStr>,
}

/// Attributes of a `DbEnum` variant.
#[derive(Default)]
pub struct Variant {
    /// `rename = "…"`.
    pub rename: Option<LitStr>,
}

impl Container {
    /// Parses the `#[persist(…)]` attributes of an entity struct.
    pub fn from_ast(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut table = Slot::new(cx, symbol::TABLE);
        let mut rename_all = Slot::new(cx, symbol::RENAME_ALL);
        let mut cache = Slot::new(cx, symbol::CACHE);
        let mut krate = Slot::new(cx, symbol::CRATE);
        let mut hooks = Slot::<Span>::new(cx, symbol::HOOKS);
        let mut audit = Slot::<Span>::new(cx, symbol::AUDIT);
        let mut relations = Vec::new();
        for_each_meta(cx, attrs, |meta| {
            let kind = if meta.path == symbol::HAS_MANY {
                Some(RelationKind::HasMany)
            } else if meta.path == symbol::HAS_ONE {
                Some(RelationKind::HasOne)
            } else if meta.path == symbol::MANY_TO_MANY {
                Some(RelationKind::ManyToMany)
            } else {
                None
            };
            if let Some(kind) = kind {
                if let Some(rel) = relation(cx, kind, &meta)? {
                    relations.push(rel);
                }
            } else if meta.path == symbol::TABLE {
                if let Some(lit) = lit_str(cx, symbol::TABLE, &meta)? {
                    non_empty(cx, symbol::TABLE, &lit);
                    table.set(&meta.path, lit);
                }
            } else if meta.path == symbol::RENAME_ALL {
                if let Some(rule) = rename_rule(cx, &meta)? {
                    rename_all.set(&meta.path, rule);
                }
            } else if meta.path == symbol::CACHE {
                if let Some(ms) = cache_ttl(cx, &meta)? {
                    cache.set(&meta.path, ms);
                }
            } else if meta.path == symbol::CRATE {
                if let Some(path) = crate_path(cx, &meta)? {
                    krate.set(&meta.path, path);
                }
            } else if meta.path == symbol::HOOKS {
                hooks.set_flag(&meta)?;
            } else if meta.path == symbol::AUDIT {
                audit.set_flag(&meta)?;
            } else {
                unknown(cx, &meta, symbol::CONTAINER_KEYS)?;
            }
            Ok(())
        });
        Container {
            table: table.get(),
            rename_all: rename_all.get(),
            relations,
            cache_ttl_ms: cache.get(),
            crate_path: krate.get(),
            hooks: hooks.get(),
            audit: audit.get(),
        }
    }
}

impl Field {
    /// Parses the `#[persist(…)]` attributes of an entity field.
    pub fn from_ast(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let flag = |s| Slot::<Span>::new(cx, s);
        let mut primary_key = flag(symbol::PRIMARY_KEY);
        let mut auto_increment = flag(symbol::AUTO_INCREMENT);
        let mut unique = flag(symbol::UNIQUE);
        let mut unique_live = flag(symbol::UNIQUE_LIVE);
        let mut index = flag(symbol::INDEX);
        let mut version = flag(symbol::VERSION);
        let mut json = flag(symbol::JSON);
        let mut skip = flag(symbol::SKIP);
        let mut created_at = flag(symbol::CREATED_AT);
        let mut updated_at = flag(symbol::UPDATED_AT);
        let mut soft_delete = flag(symbol::SOFT_DELETE);
        let mut column = Slot::new(cx, symbol::COLUMN);
        let mut references = Slot::new(cx, symbol::REFERENCES);
        let mut default = Slot::new(cx, symbol::DEFAULT);

        for_each_meta(cx, attrs, |meta| {
            let flags = [
                &mut primary_key,
                &mut auto_increment,
                &mut unique,
                &mut unique_live,
                &mut index,
                &mut version,
                &mut json,
                &mut skip,
                &mut created_at,
                &mut updated_at,
                &mut soft_delete,
            ];
            if let Some(slot) = flags.into_iter().find(|slot| meta.path == slot.name) {
                slot.set_flag(&meta)?;
            } else if meta.path == symbol::COLUMN {
                if let Some(lit) = lit_str(cx, symbol::COLUMN, &meta)? {
                    non_empty(cx, symbol::COLUMN, &lit);
                    column.set(&meta.path, lit);
                }
            } else if meta.path == symbol::DEFAULT {
                if let Some(lit) = lit_str(cx, symbol::DEFAULT, &meta)? {
                    non_empty(cx, symbol::DEFAULT, &lit);
                    default.set(&meta.path, lit);
                }
            } else if meta.path == symbol::REFERENCES {
                if let Some(lit) = lit_str(cx, symbol::REFERENCES, &meta)? {
                    // `LitStr::parse` gives every token the literal's span,
                    // so type errors about the target point at the string.
                    match lit.parse::<syn::Type>() {
                        Ok(ty) => references.set(&meta.path, (lit, ty)),
                        Err(_) => cx.error_spanned_by(
                            &lit,
                            "`references` expects the type of an entity, e.g. `references = \"Customer\"`",
                        ),
                    }
                }
            } else {
                unknown(cx, &meta, symbol::FIELD_KEYS)?;
            }
            Ok(())
        });

        Field {
            primary_key: primary_key.get(),
            auto_increment: auto_increment.get(),
            column: column.get(),
            unique: unique.get(),
            unique_live: unique_live.get(),
            index: index.get(),
            references: references.get(),
            version: version.get(),
            json: json.get(),
            skip: skip.get(),
            default: default.get(),
            created_at: created_at.get(),
            updated_at: updated_at.get(),
            soft_delete: soft_delete.get(),
        }
    }

    /// Every key present besides `skip`, with its span, for conflict checks.
    pub fn keys_besides_skip(&self) -> Vec<(Symbol, Span)> {
        let lit = |l: &Option<LitStr>| l.as_ref().map(LitStr::span);
        let candidates = [
            (symbol::PRIMARY_KEY, self.primary_key),
            (symbol::AUTO_INCREMENT, self.auto_increment),
            (symbol::COLUMN, lit(&self.column)),
            (symbol::UNIQUE, self.unique),
            (symbol::UNIQUE_LIVE, self.unique_live),
            (symbol::INDEX, self.index),
            (
                symbol::REFERENCES,
                self.references.as_ref().map(|(l, _)| l.span()),
            ),
            (symbol::VERSION, self.version),
            (symbol::JSON, self.json),
            (symbol::DEFAULT, lit(&self.default)),
            (symbol::CREATED_AT, self.created_at),
            (symbol::UPDATED_AT, self.updated_at),
            (symbol::SOFT_DELETE, self.soft_delete),
        ];
        candidates
            .into_iter()
            .filter_map(|(s, span)| Some((s, span?)))
            .collect()
    }
}

impl Enum {
    /// Parses the `#[persist(…)]` attributes of a `DbEnum` enum.
    pub fn from_ast(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut rename_all = Slot::new(cx, symbol::RENAME_ALL);
        let mut krate = Slot::new(cx, symbol::CRATE);
        for_each_meta(cx, attrs, |meta| {
            if meta.path == symbol::RENAME_ALL {
                if let Some(names) = enum_names(cx, &meta)? {
                    rename_all.set(&meta.path, names);
                }
            } else if meta.path == symbol::CRATE {
                if let Some(path) = crate_path(cx, &meta)? {
                    krate.set(&meta.path, path);
                }
            } else {
                unknown(cx, &meta, symbol::ENUM_KEYS)?;
            }
            Ok(())
        });
        Enum {
            rename_all: rename_all.get(),
            crate_path: krate.get(),
        }
    }
}

impl Newtype {
    /// Parses the `#[persist(…)]` attributes of a `#[derive(Field)]`
    /// newtype.
    pub fn from_ast(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut krate = Slot::new(cx, symbol::CRATE);
        for_each_meta(cx, attrs, |meta| {
            if meta.path == symbol::CRATE {
                if let Some(path) = crate_path(cx, &meta)? {
                    krate.set(&meta.path, path);
                }
            } else {
                unknown(cx, &meta, symbol::NEWTYPE_KEYS)?;
            }
            Ok(())
        });
        Newtype {
            crate_path: krate.get(),
        }
    }

    /// Reports every `#[persist(…)]` key on the newtype's field: it has none.
    pub fn no_field_keys(cx: &Ctxt, attrs: &[Attribute]) {
        for_each_meta(cx, attrs, |meta| {
            let key = meta.path.to_token_stream().to_string().replace(' ', "");
            cx.error_spanned_by(
                &meta.path,
                format!(
                    "#[derive(Field)] takes no persist attribute on its field (found `{key}`); put column keys on the entity's field"
                ),
            );
            skip_value(&meta)
        });
    }
}

impl SerdeNames {
    /// serde's names from `#[serde(…)]` attributes (of the enum or of one
    /// variant); every other serde key is skipped, as serde itself checks
    /// them.
    pub fn from_ast(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut rename_all = Slot::new(cx, symbol::RENAME_ALL);
        let mut rename = Slot::new(cx, symbol::RENAME);
        for attr in attrs.iter().filter(|a| a.path() == symbol::SERDE) {
            let parsed = attr.parse_nested_meta(|meta| {
                if meta.path == symbol::RENAME_ALL {
                    if let Some(lit) = serde_name(cx, &meta)? {
                        match RenameRule::from_str(&lit.value()) {
                            Some(rule) => rename_all.set(&meta.path, rule),
                            None => cx.error_spanned_by(
                                &lit,
                                format!(
                                    "unknown serde rename_all value `{}`; expected one of: {}",
                                    lit.value(),
                                    RenameRule::valid_values()
                                ),
                            ),
                        }
                    }
                } else if meta.path == symbol::RENAME {
                    if let Some(lit) = serde_name(cx, &meta)? {
                        rename.set(&meta.path, lit);
                    }
                } else {
                    skip_value(&meta)?;
                }
                Ok(())
            });
            // A malformed serde attribute is serde's to report.
            let _ = parsed;
        }
        SerdeNames {
            rename_all: rename_all.get(),
            rename: rename.get(),
        }
    }
}

/// The name of serde's `key = "…"` or `key(serialize = "…", …)`; `None`
/// when only `deserialize` is given (serialization keeps the default).
fn serde_name(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<LitStr>> {
    if meta.input.peek(Token![=]) {
        return lit_str(cx, symbol::RENAME, meta);
    }
    let mut name = None;
    meta.parse_nested_meta(|inner| {
        if inner.path == symbol::SERIALIZE {
            name = lit_str(cx, symbol::SERIALIZE, &inner)?;
        } else {
            skip_value(&inner)?;
        }
        Ok(())
    })?;
    Ok(name)
}

impl Variant {
    /// Parses the `#[persist(…)]` attributes of a `DbEnum` variant.
    pub fn from_ast(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut rename = Slot::new(cx, symbol::RENAME);
        for_each_meta(cx, attrs, |meta| {
            if meta.path == symbol::RENAME {
                if let Some(lit) = lit_str(cx, symbol::RENAME, &meta)? {
                    non_empty(cx, symbol::RENAME, &lit);
                    rename.set(&meta.path, lit);
                }
            } else {
                unknown(cx, &meta, symbol::VARIANT_KEYS)?;
            }
            Ok(())
        });
        Variant {
            rename: rename.get(),
        }
    }
}

/// One key's value, reporting a second occurrence as a duplicate.
struct Slot<'c, T> {
    cx: &'c Ctxt,
    name: Symbol,
    value: Option<T>,
}

impl<'c, T> Slot<'c, T> {
    fn new(cx: &'c Ctxt, name: Symbol) -> Self {
        Slot {
            cx,
            name,
            value: None,
        }
    }

    fn set(&mut self, path: &syn::Path, value: T) {
        if self.value.is_some() {
            self.cx
                .error_spanned_by(path, format!("duplicate persist attribute `{}`", self.name));
        } else {
            self.value = Some(value);
        }
    }

    fn get(self) -> Option<T> {
        self.value
    }
}

impl Slot<'_, Span> {
    /// Sets a key that takes no value.
    fn set_flag(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        if !(meta.input.is_empty() || meta.input.peek(Token![,])) {
            self.cx
                .error_spanned_by(&meta.path, format!("`{}` takes no value", self.name));
            skip_value(meta)?;
        }
        self.set(&meta.path, meta.path.span());
        Ok(())
    }
}

/// Calls `f` with each key of every `#[persist(…)]` attribute; a syntax
/// error ends that attribute only.
fn for_each_meta(
    cx: &Ctxt,
    attrs: &[Attribute],
    mut f: impl FnMut(ParseNestedMeta<'_>) -> syn::Result<()>,
) {
    for attr in attrs.iter().filter(|a| a.path() == symbol::PERSIST) {
        if let Err(err) = attr.parse_nested_meta(&mut f) {
            cx.syn_error(err);
        }
    }
}

/// Reports an unknown key with the valid ones, and skips its value.
fn unknown(cx: &Ctxt, meta: &ParseNestedMeta<'_>, valid: &[Symbol]) -> syn::Result<()> {
    let key = meta.path.to_token_stream().to_string().replace(' ', "");
    cx.error_spanned_by(
        &meta.path,
        format!(
            "unknown persist attribute `{key}`; expected one of: {}",
            symbol::list(valid)
        ),
    );
    skip_value(meta)
}

/// Consumes `= expr` or `(…)` after a key whose value is not used.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        content.parse::<TokenStream>()?;
    }
    Ok(())
}

/// The string of `key = "…"`; reports any other shape and gives `None`.
/// Parses `cache(ttl = "60s")` (or a bare `cache`, 60 seconds) into
/// milliseconds.
fn cache_ttl(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<u64>> {
    const DEFAULT_MS: u64 = 60_000;
    if !meta.input.peek(syn::token::Paren) {
        return Ok(Some(DEFAULT_MS));
    }
    let mut ttl = Slot::new(cx, symbol::TTL);
    meta.parse_nested_meta(|inner| {
        if inner.path == symbol::TTL {
            if let Some(lit) = lit_str(cx, symbol::TTL, &inner)? {
                match parse_duration_ms(&lit.value()) {
                    Some(ms) if ms > 0 => ttl.set(&inner.path, ms),
                    _ => cx.error_spanned_by(
                        &lit,
                        "expected a duration such as \"500ms\", \"60s\", \"5m\" or \"1h\"",
                    ),
                }
            }
            Ok(())
        } else {
            unknown(cx, &inner, symbol::CACHE_KEYS)
        }
    })?;
    Ok(Some(ttl.get().unwrap_or(DEFAULT_MS)))
}

/// `"500ms"`, `"60s"`, `"5m"`, `"1h"` in milliseconds.
fn parse_duration_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let factor = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

fn lit_str(cx: &Ctxt, key: Symbol, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<LitStr>> {
    if !meta.input.peek(Token![=]) {
        cx.error_spanned_by(&meta.path, format!("expected `{key} = \"...\"`"));
        skip_value(meta)?;
        return Ok(None);
    }
    let mut expr: Expr = meta.value()?.parse()?;
    // Values passed through `macro_rules!` arrive wrapped in invisible groups.
    while let Expr::Group(group) = expr {
        expr = *group.expr;
    }
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Ok(Some(lit)),
        other => {
            cx.error_spanned_by(other, format!("expected a string: `{key} = \"...\"`"));
            Ok(None)
        }
    }
}

/// Parses `(Target, key = "…", …)` after a relation key.
fn relation(
    cx: &Ctxt,
    kind: RelationKind,
    meta: &ParseNestedMeta<'_>,
) -> syn::Result<Option<Relation>> {
    let key = meta.path.clone();
    let name = key.to_token_stream().to_string();
    if !meta.input.peek(syn::token::Paren) {
        let example = match kind {
            RelationKind::ManyToMany => {
                "many_to_many(Tag, through = \"PostTag\", by = \"post_id\", to = \"tag_id\")"
            }
            _ => "has_many(Post, by = \"user_id\")",
        };
        cx.error_spanned_by(
            &key,
            format!("expected `{name}(Entity, …)`, e.g. `{example}`"),
        );
        skip_value(meta)?;
        return Ok(None);
    }
    let content;
    syn::parenthesized!(content in meta.input);
    let target: syn::Type = content.parse()?;
    let mut by = Slot::new(cx, symbol::BY);
    let mut to = Slot::new(cx, symbol::TO);
    let mut through = Slot::new(cx, symbol::THROUGH);
    let mut on_delete = Slot::new(cx, symbol::ON_DELETE);
    while !content.is_empty() {
        content.parse::<Token![,]>()?;
        if content.is_empty() {
            break;
        }
        let path: syn::Path = content.parse()?;
        content.parse::<Token![=]>()?;
        let lit: LitStr = match content.parse::<Expr>()? {
            Expr::Lit(ExprLit {
                lit: Lit::Str(lit), ..
            }) => lit,
            other => {
                cx.error_spanned_by(other, "expected a string: `key = \"...\"`");
                continue;
            }
        };
        if path == symbol::BY {
            non_empty(cx, symbol::BY, &lit);
            by.set(&path, lit);
        } else if path == symbol::TO {
            non_empty(cx, symbol::TO, &lit);
            to.set(&path, lit);
        } else if path == symbol::THROUGH {
            match lit.parse::<syn::Type>() {
                Ok(ty) => through.set(&path, (lit, ty)),
                Err(_) => cx.error_spanned_by(
                    &lit,
                    "`through` expects the type of the join entity, e.g. `through = \"PostTag\"`",
                ),
            }
        } else if path == symbol::ON_DELETE {
            match OnDelete::from_str(&lit.value()) {
                Some(v) => on_delete.set(&path, (lit, v)),
                None => cx.error_spanned_by(
                    &lit,
                    format!(
                        "unknown on_delete value `{}`; expected one of: {}",
                        lit.value(),
                        OnDelete::VALUES
                    ),
                ),
            }
        } else {
            let k = path.to_token_stream().to_string().replace(' ', "");
            cx.error_spanned_by(
                &path,
                format!(
                    "unknown `{name}` key `{k}`; expected one of: {}",
                    symbol::list(symbol::RELATION_KEYS)
                ),
            );
        }
    }
    Ok(Some(Relation {
        key,
        kind,
        target,
        by: by.get(),
        to: to.get(),
        through: through.get(),
        on_delete: on_delete.get(),
    }))
}

/// Parses `crate = "path"`: a module-style path (`::persist_core`,
/// `crate::storage::engine`), without generic arguments.
fn crate_path(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<syn::Path>> {
    let Some(lit) = lit_str(cx, symbol::CRATE, meta)? else {
        return Ok(None);
    };
    // `LitStr::parse_with` gives every token the literal's span: the path
    // resolves where the user wrote it, like a path written in the code.
    match lit.parse_with(syn::Path::parse_mod_style) {
        Ok(path) => Ok(Some(path)),
        Err(_) => {
            cx.error_spanned_by(
                &lit,
                "`crate` expects a path to persist-core, e.g. `crate = \"::persist_core\"` or `crate = \"crate::storage::engine\"`",
            );
            Ok(None)
        }
    }
}

fn non_empty(cx: &Ctxt, key: Symbol, lit: &LitStr) {
    if lit.value().trim().is_empty() {
        cx.error_spanned_by(lit, format!("`{key}` must not be empty"));
    }
}

/// `rename_all = "…"` on a `DbEnum`: a case rule, or `"serde"`.
fn enum_names(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<EnumNames>> {
    let Some(lit) = lit_str(cx, symbol::RENAME_ALL, meta)? else {
        return Ok(None);
    };
    if lit.value() == "serde" {
        return Ok(Some(EnumNames::Serde));
    }
    match RenameRule::from_str(&lit.value()) {
        Some(rule) => Ok(Some(EnumNames::Rule(rule))),
        None => {
            cx.error_spanned_by(
                &lit,
                format!(
                    "unknown rename_all value `{}`; expected one of: {}, or \"serde\" for serde's names",
                    lit.value(),
                    RenameRule::valid_values()
                ),
            );
            Ok(None)
        }
    }
}

fn rename_rule(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<RenameRule>> {
    let Some(lit) = lit_str(cx, symbol::RENAME_ALL, meta)? else {
        return Ok(None);
    };
    let rule = RenameRule::from_str(&lit.value());
    if rule.is_none() {
        cx.error_spanned_by(
            &lit,
            format!(
                "unknown rename_all value `{}`; expected one of: {}",
                lit.value(),
                RenameRule::valid_values()
            ),
        );
    }
    Ok(rule)
}
