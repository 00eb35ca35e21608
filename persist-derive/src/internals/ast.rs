//! The intermediate representation that expansion works from: the entity
//! or enum with every name resolved and every attribute parsed.

use quote::quote;
use syn::{Data, DeriveInput, Fields, Ident, Type, Visibility};

use super::case::{self, RenameRule};
use super::{Ctxt, attr};

const ENTITY_SHAPE: &str =
    "#[derive(Entity)] supports only structs with named fields and no generics";
const ENUM_SHAPE: &str = "#[derive(DbEnum)] supports only enums with unit variants and no generics";
const NEWTYPE_SHAPE: &str = "#[derive(Field)] supports only a struct with exactly one field and no generics, a newtype such as `struct Money(i64);` or `struct Email { value: String }`";

/// An entity struct.
pub struct Entity<'a> {
    /// The struct's name.
    pub ident: &'a Ident,
    /// The struct's name as text (raw `r#` prefix removed).
    pub name: String,
    /// The struct's visibility, given to its repository type.
    pub vis: &'a Visibility,
    /// Table name: `table`, else the struct name in snake_case.
    pub table: String,
    /// Every field, stored or skipped, in declaration order.
    pub fields: Vec<Field<'a>>,
    /// Relations declared with container attributes, in declaration order.
    pub relations: Vec<attr::Relation>,
    /// `cache(ttl = "…")` in milliseconds.
    pub cache_ttl_ms: Option<u64>,
    /// `hooks`: the entity implements `Hooks`.
    pub hooks: bool,
    /// `audit`: the entity keeps a history table.
    pub audit: bool,
    /// The path generated code names persist-core by: `crate = "…"`, else
    /// `::persist_core`. After a bad `crate` value, the stubs name the
    /// default.
    pub root: syn::Path,
}

/// One field of an entity.
pub struct Field<'a> {
    /// The field's name.
    pub ident: &'a Ident,
    /// The field's name as text (raw `r#` prefix removed).
    pub name: String,
    /// The field's type.
    pub ty: &'a Type,
    /// Parsed `#[persist(…)]` keys.
    pub attrs: attr::Field,
    /// Column name: `column`, else the name with `rename_all` applied.
    pub column: String,
    /// Index in the entity's stored columns; `None` for a skipped field.
    pub index: Option<usize>,
}

/// A `DbEnum` enum.
pub struct Enum<'a> {
    /// The enum's name.
    pub ident: &'a Ident,
    /// Its variants, in declaration order.
    pub variants: Vec<Variant<'a>>,
    /// The path generated code names persist-core by: `crate = "…"`, else
    /// `::persist_core`. After a bad `crate` value, the stubs name the
    /// default.
    pub root: syn::Path,
}

/// One unit variant of a `DbEnum`.
pub struct Variant<'a> {
    /// The variant's name.
    pub ident: &'a Ident,
    /// Stored text: `rename`, else the name with `rename_all` applied.
    pub stored: String,
    /// Parsed `#[persist(…)]` keys.
    pub attrs: attr::Variant,
}

/// A `#[derive(Field)]` newtype: one field, stored as its type is.
pub struct Newtype<'a> {
    /// The struct's name.
    pub ident: &'a Ident,
    /// The field: `0` or its name.
    pub member: syn::Member,
    /// The field's type, whose `Field` impl every method delegates to.
    pub inner: &'a Type,
    /// The path generated code names persist-core by: `crate = "…"`, else
    /// `::persist_core`.
    pub root: syn::Path,
}

impl<'a> Newtype<'a> {
    /// Builds the representation; `None` (with an error recorded) when the
    /// input is not a non-generic struct of exactly one field.
    pub fn from_ast(cx: &Ctxt, input: &'a DeriveInput) -> Option<Self> {
        let attrs = attr::Newtype::from_ast(cx, &input.attrs);
        let ident = &input.ident;
        let field = match &input.data {
            Data::Struct(data) => {
                let fields: Vec<&syn::Field> = data.fields.iter().collect();
                match (fields.as_slice(), &data.fields) {
                    ([field], _) => Some(*field),
                    (_, Fields::Unit) => {
                        let token = &data.struct_token;
                        cx.error_spanned_by(
                            quote!(#token #ident),
                            format!("{NEWTYPE_SHAPE}; a unit struct has no value to store"),
                        );
                        None
                    }
                    (fields, all) => {
                        let found = fields.len();
                        cx.error_spanned_by(
                            all,
                            format!("{NEWTYPE_SHAPE}; found {found} fields (an entity is #[derive(Entity)])"),
                        );
                        None
                    }
                }
            }
            Data::Enum(data) => {
                let token = &data.enum_token;
                cx.error_spanned_by(
                    quote!(#token #ident),
                    format!("{NEWTYPE_SHAPE}; an enum of unit variants is #[derive(DbEnum)]"),
                );
                None
            }
            Data::Union(data) => {
                let token = &data.union_token;
                cx.error_spanned_by(quote!(#token #ident), NEWTYPE_SHAPE);
                None
            }
        };
        let generic = !input.generics.params.is_empty() || input.generics.where_clause.is_some();
        if generic && field.is_some() {
            cx.error_spanned_by(&input.generics, NEWTYPE_SHAPE);
        }
        let field = field.filter(|_| !generic)?;
        attr::Newtype::no_field_keys(cx, &field.attrs);
        let member = match &field.ident {
            Some(name) => syn::Member::Named(name.clone()),
            None => syn::Member::Unnamed(syn::Index::from(0)),
        };
        Some(Newtype {
            ident,
            member,
            inner: &field.ty,
            root: attrs.crate_path.unwrap_or_else(default_root),
        })
    }
}

impl<'a> Entity<'a> {
    /// Builds the representation; `None` (with an error recorded) when the
    /// input is not a non-generic struct with named fields.
    pub fn from_ast(cx: &Ctxt, input: &'a DeriveInput) -> Option<Self> {
        let mut attrs = attr::Container::from_ast(cx, &input.attrs);
        let relations = std::mem::take(&mut attrs.relations);
        let named = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => Some(named),
                Fields::Unnamed(unnamed) => {
                    cx.error_spanned_by(unnamed, ENTITY_SHAPE);
                    None
                }
                Fields::Unit => {
                    cx.error_spanned_by(&input.ident, ENTITY_SHAPE);
                    None
                }
            },
            Data::Enum(data) => {
                let (token, ident) = (&data.enum_token, &input.ident);
                cx.error_spanned_by(quote!(#token #ident), ENTITY_SHAPE);
                None
            }
            Data::Union(data) => {
                let (token, ident) = (&data.union_token, &input.ident);
                cx.error_spanned_by(quote!(#token #ident), ENTITY_SHAPE);
                None
            }
        };
        let generic = !input.generics.params.is_empty() || input.generics.where_clause.is_some();
        if generic && named.is_some() {
            cx.error_spanned_by(&input.generics, ENTITY_SHAPE);
        }
        let named = named.filter(|_| !generic)?;

        let name = unraw(&input.ident);
        let table = match &attrs.table {
            Some(lit) => lit.value(),
            None => case::to_snake_case(&name),
        };
        let mut next_index = 0;
        let fields = named
            .named
            .iter()
            .filter_map(|field| {
                // Named fields always have an ident; the filter only avoids an unwrap.
                let ident = field.ident.as_ref()?;
                let field_attrs = attr::Field::from_ast(cx, &field.attrs);
                let name = unraw(ident);
                let column = match (&field_attrs.column, attrs.rename_all) {
                    (Some(lit), _) => lit.value(),
                    (None, Some(rule)) => rule.apply_to_field(&name),
                    (None, None) => name.clone(),
                };
                let index = field_attrs.skip.is_none().then(|| {
                    next_index += 1;
                    next_index - 1
                });
                Some(Field {
                    ident,
                    name,
                    ty: &field.ty,
                    attrs: field_attrs,
                    column,
                    index,
                })
            })
            .collect();
        Some(Entity {
            ident: &input.ident,
            name,
            vis: &input.vis,
            table,
            fields,
            relations,
            cache_ttl_ms: attrs.cache_ttl_ms,
            hooks: attrs.hooks.is_some(),
            audit: attrs.audit.is_some(),
            root: attrs.crate_path.unwrap_or_else(default_root),
        })
    }

    /// The stored fields, in column order.
    pub fn columns(&self) -> impl Iterator<Item = (usize, &Field<'a>)> {
        self.fields.iter().filter_map(|f| Some((f.index?, f)))
    }

    /// The primary-key fields, in key (declaration) order.
    pub fn key_fields(&self) -> Vec<&Field<'a>> {
        self.fields.iter().filter(|f| f.is_primary_key()).collect()
    }

    /// Column index of the first stored field matching `pred`.
    pub fn column_where(&self, pred: impl Fn(&Field<'a>) -> bool) -> Option<usize> {
        self.columns().find(|(_, f)| pred(f)).map(|(i, _)| i)
    }
}

/// The column constant a relation's `by` / `to` field name resolves to
/// (`"user_id"` → `USER_ID`), spanned at the string so that a field the
/// target lacks is reported there.
pub fn field_const(lit: &syn::LitStr) -> Ident {
    Ident::new(&case::to_screaming_snake_case(&lit.value()), lit.span())
}

impl Field<'_> {
    /// Part of the primary key.
    pub fn is_primary_key(&self) -> bool {
        self.attrs.primary_key.is_some() && self.index.is_some()
    }

    /// Stored as a JSON document.
    pub fn is_json(&self) -> bool {
        self.attrs.json.is_some()
    }

    /// Has a unique constraint of its own.
    pub fn is_unique(&self) -> bool {
        self.attrs.unique.is_some()
    }

    /// Unique among the rows not soft-deleted (`unique_live`).
    pub fn is_unique_live(&self) -> bool {
        self.attrs.unique_live.is_some()
    }

    /// Has an index: `index`, or implied by `references`.
    pub fn is_indexed(&self) -> bool {
        self.attrs.index.is_some() || self.attrs.references.is_some()
    }

    /// The referenced entity type, for a foreign key.
    pub fn references(&self) -> Option<&Type> {
        self.attrs.references.as_ref().map(|(_, ty)| ty)
    }

    /// SQL default expression.
    pub fn default(&self) -> Option<String> {
        self.attrs.default.as_ref().map(syn::LitStr::value)
    }

    /// The name of the generated column constant, e.g. `BALANCE_CENTS`.
    pub fn const_name(&self) -> Ident {
        Ident::new(
            &case::to_screaming_snake_case(&self.name),
            self.ident.span(),
        )
    }

    /// Whether the type is written `Option<…>`: the nullability of a JSON
    /// column, whose type is not a `Field`.
    pub fn is_option(&self) -> bool {
        is_option(self.ty)
    }
}

impl<'a> Enum<'a> {
    /// Builds the representation; `None` (with an error recorded) when the
    /// input is not a non-generic enum.
    pub fn from_ast(cx: &Ctxt, input: &'a DeriveInput) -> Option<Self> {
        let attrs = attr::Enum::from_ast(cx, &input.attrs);
        let data = match &input.data {
            Data::Enum(data) => Some(data),
            Data::Struct(data) => {
                let (token, ident) = (&data.struct_token, &input.ident);
                cx.error_spanned_by(quote!(#token #ident), ENUM_SHAPE);
                None
            }
            Data::Union(data) => {
                let (token, ident) = (&data.union_token, &input.ident);
                cx.error_spanned_by(quote!(#token #ident), ENUM_SHAPE);
                None
            }
        };
        let generic = !input.generics.params.is_empty() || input.generics.where_clause.is_some();
        if generic && data.is_some() {
            cx.error_spanned_by(&input.generics, ENUM_SHAPE);
        }
        let data = data.filter(|_| !generic)?;
        let (rule, serde) = match attrs.rename_all {
            None => (RenameRule::Pascal, false),
            Some(attr::EnumNames::Rule(rule)) => (rule, false),
            // serde's default is the variant name, as written.
            Some(attr::EnumNames::Serde) => (
                attr::SerdeNames::from_ast(cx, &input.attrs)
                    .rename_all
                    .unwrap_or(RenameRule::Pascal),
                true,
            ),
        };
        let variants = data
            .variants
            .iter()
            .map(|v| {
                if !matches!(v.fields, Fields::Unit) {
                    cx.error_spanned_by(
                        &v.fields,
                        "#[derive(DbEnum)] supports only unit variants (no fields)",
                    );
                }
                let attrs = attr::Variant::from_ast(cx, &v.attrs);
                let serde_rename = serde
                    .then(|| attr::SerdeNames::from_ast(cx, &v.attrs).rename)
                    .flatten();
                let stored = match (&attrs.rename, serde_rename) {
                    (Some(lit), _) => lit.value(),
                    (None, Some(lit)) => lit.value(),
                    (None, None) => rule.apply_to_variant(&unraw(&v.ident)),
                };
                Variant {
                    ident: &v.ident,
                    stored,
                    attrs,
                }
            })
            .collect();
        Some(Enum {
            ident: &input.ident,
            variants,
            root: attrs.crate_path.unwrap_or_else(default_root),
        })
    }
}

/// The path generated code names persist-core by.
fn default_root() -> syn::Path {
    syn::parse_quote!(::persist_core)
}

/// The text of an identifier without a raw `r#` prefix.
pub fn unraw(ident: &Ident) -> String {
    let s = ident.to_string();
    s.strip_prefix("r#").map(str::to_owned).unwrap_or(s)
}

/// Strips invisible groups and parentheses around a type.
fn peel(mut ty: &Type) -> &Type {
    loop {
        match ty {
            Type::Group(g) => ty = &g.elem,
            Type::Paren(p) => ty = &p.elem,
            _ => return ty,
        }
    }
}

/// The last path segment of a type written as a path, e.g. `Option<T>`.
fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match peel(ty) {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        _ => None,
    }
}

/// Whether the type is syntactically `Option<…>`.
pub fn is_option(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|seg| {
        seg.ident == "Option" && matches!(seg.arguments, syn::PathArguments::AngleBracketed(_))
    })
}

/// Whether the type is syntactically one of the integer types `allowed`.
pub fn is_integer(ty: &Type, allowed: &[&str]) -> bool {
    last_segment(ty)
        .is_some_and(|seg| seg.arguments.is_none() && allowed.iter().any(|a| seg.ident == a))
}
