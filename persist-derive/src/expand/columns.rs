//! Column metadata and the typed column constants.

use proc_macro2::{Literal, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::{option_usize, private};
use crate::internals::ast::{Entity, Field, field_const};
use crate::internals::attr::{OnDelete, Relation, RelationKind};

/// The `EntityMeta` value of an entity.
pub fn meta(entity: &Entity<'_>) -> TokenStream {
    let p = private(&entity.root);
    let (name, table) = (&entity.name, &entity.table);
    let columns = entity.columns().map(|(_, f)| column_meta(&p, f));
    let primary_key = entity
        .columns()
        .filter(|(_, f)| f.is_primary_key())
        .map(|(i, _)| Literal::usize_suffixed(i));
    let auto_increment = option_usize(entity.column_where(|f| f.attrs.auto_increment.is_some()));
    let version = option_usize(entity.column_where(|f| f.attrs.version.is_some()));
    let created_at = option_usize(entity.column_where(|f| f.attrs.created_at.is_some()));
    let updated_at = option_usize(entity.column_where(|f| f.attrs.updated_at.is_some()));
    let soft_delete = option_usize(entity.column_where(|f| f.attrs.soft_delete.is_some()));
    let (audit, hooks) = (entity.audit, entity.hooks);
    let relations = entity
        .relations
        .iter()
        .filter_map(|rel| relation_meta(&p, rel));
    let cache_ttl = match entity.cache_ttl_ms {
        Some(ms) => quote!(::core::option::Option::Some(::core::time::Duration::from_millis(#ms))),
        None => quote!(::core::option::Option::None),
    };
    quote! {
        #p::EntityMeta {
            name: #name,
            table: #table,
            columns: &[#(#columns),*],
            primary_key: &[#(#primary_key),*],
            auto_increment: #auto_increment,
            version: #version,
            created_at: #created_at,
            updated_at: #updated_at,
            relations: &[#(#relations),*],
            cache_ttl: #cache_ttl,
            soft_delete: #soft_delete,
            audit: #audit,
            hooks: #hooks,
        }
    }
}

/// The `RelationMeta` of a declared relation; `None` when it misses a key
/// (already reported by `check`).
fn relation_meta(p: &TokenStream, rel: &Relation) -> Option<TokenStream> {
    let target = &rel.target;
    let by = field_const(rel.by.as_ref()?);
    let kind = match rel.kind {
        RelationKind::HasMany => quote!(HasMany),
        RelationKind::HasOne => quote!(HasOne),
        RelationKind::ManyToMany => quote!(ManyToMany),
    };
    let on_delete = match rel.on_delete.as_ref().map(|(_, v)| *v) {
        None | Some(OnDelete::NoAction) => quote!(NoAction),
        Some(OnDelete::Cascade) => quote!(Cascade),
        Some(OnDelete::SetNull) => quote!(SetNull),
    };
    // `<Target>::FIELD.index()` is a constant: a `by` naming a field the
    // target lacks is a compile error at the string.
    let (by, through) = match rel.kind {
        RelationKind::ManyToMany => {
            let (_, through) = rel.through.as_ref()?;
            let to = field_const(rel.to.as_ref()?);
            (
                quote!(<#through>::#by.index()),
                quote!(::core::option::Option::Some((|| <#through as #p::Entity>::META, <#through>::#to.index()))),
            )
        }
        _ => (
            quote!(<#target>::#by.index()),
            quote!(::core::option::Option::None),
        ),
    };
    Some(quote! {
        #p::RelationMeta {
            kind: #p::RelationKind::#kind,
            target: || <#target as #p::Entity>::META,
            by: #by,
            through: #through,
            on_delete: #p::OnDelete::#on_delete,
        }
    })
}

/// `Related<Target>` for each declared relation, and `BelongsTo<Parent>` for
/// each entity exactly one field references.
pub fn relation_impls(entity: &Entity<'_>) -> TokenStream {
    let p = private(&entity.root);
    let ident = entity.ident;
    let related = entity
        .relations
        .iter()
        .filter(|r| relation_meta(&p, r).is_some())
        .enumerate()
        .map(|(i, rel)| {
            let target = &rel.target;
            let i = Literal::usize_suffixed(i);
            quote! {
                #[automatically_derived]
                impl #p::Related<#target> for #ident {
                    const RELATION: &'static #p::RelationMeta =
                        &<#ident as #p::Entity>::META.relations[#i];
                }
            }
        });
    let refs: Vec<(usize, &syn::Type)> = entity
        .columns()
        .filter_map(|(i, f)| Some((i, f.references()?)))
        .collect();
    let key = |ty: &syn::Type| quote::ToTokens::to_token_stream(ty).to_string();
    let belongs = refs
        .iter()
        .filter(|(_, ty)| refs.iter().filter(|(_, o)| key(o) == key(ty)).count() == 1)
        .map(|(i, target)| {
            let i = Literal::usize_suffixed(*i);
            quote! {
                #[automatically_derived]
                impl #p::BelongsTo<#target> for #ident {
                    const COLUMN: usize = #i;
                }
            }
        });
    quote!(#(#related)* #(#belongs)*)
}

fn column_meta(p: &TokenStream, f: &Field<'_>) -> TokenStream {
    let ty = f.ty;
    let (name, field) = (&f.column, &f.name);
    let (sql_type, nullable) = if f.is_json() {
        // A JSON field is any serde type, not a `Field`: its nullability is
        // read from the type as written.
        let nullable = f.is_option();
        (quote!(#p::SqlType::Json), quote!(#nullable))
    } else {
        (
            quote_spanned!(ty.span()=> <#ty as #p::Field>::SQL_TYPE),
            quote_spanned!(ty.span()=> <#ty as #p::Field>::NULLABLE),
        )
    };
    let (primary_key, unique, index) = (f.is_primary_key(), f.is_unique(), f.is_indexed());
    let unique_live = f.is_unique_live();
    let default = match f.default() {
        Some(sql) => quote!(::core::option::Option::Some(#sql)),
        None => quote!(::core::option::Option::None),
    };
    // The target's tokens carry the span of the `references` string (see
    // `attr::Field`), so "`Other: Entity` is not satisfied" points there.
    // A separate `assert_entity::<Other>()` would only repeat that error.
    let references = match f.references() {
        Some(target) => quote!(::core::option::Option::Some(|| <#target as #p::Entity>::META)),
        None => quote!(::core::option::Option::None),
    };
    quote! {
        #p::ColumnMeta {
            name: #name,
            field: #field,
            sql_type: #sql_type,
            nullable: #nullable,
            primary_key: #primary_key,
            unique: #unique,
            index: #index,
            unique_live: #unique_live,
            default: #default,
            references: #references,
        }
    }
}

/// One typed constant per stored non-JSON field: `Account::IBAN`.
pub fn constants(entity: &Entity<'_>) -> TokenStream {
    let p = private(&entity.root);
    let ident = entity.ident;
    let constants = entity
        .columns()
        .filter(|(_, f)| !f.is_json())
        .map(|(i, f)| {
            let (name, ty, column) = (f.const_name(), f.ty, &f.column);
            let i = Literal::usize_suffixed(i);
            let doc = format!(" Column `{column}` of `{}`.", entity.table);
            let column_ty = quote_spanned!(ty.span()=> #p::Column<#ident, #ty>);
            quote! {
                #[doc = #doc]
                pub const #name: #column_ty = #p::Column::new(#i, #column);
            }
        });
    quote!(#(#constants)*)
}
