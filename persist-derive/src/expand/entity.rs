//! `#[derive(Entity)]`: the `Entity` impl, and the assembly of the column
//! constants and the repository around it.

use proc_macro2::{Literal, TokenStream};
use quote::{quote, quote_spanned};
use syn::DeriveInput;
use syn::spanned::Spanned;

use super::{Mode, columns, finish, private, repository};
use crate::internals::ast::{Entity, Field};
use crate::internals::{Ctxt, check};

/// Expands `#[derive(Entity)]` on `input`.
pub fn derive(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(err) => return err.to_compile_error(),
    };
    let cx = Ctxt::new();
    let entity = Entity::from_ast(&cx, &input);
    if let Some(entity) = &entity {
        check::check_entity(&cx, entity);
    }
    finish(cx, entity, expand)
}

fn expand(entity: &Entity<'_>, mode: Mode) -> TokenStream {
    let ident = entity.ident;
    let (entity_impl, relations) = match mode {
        Mode::Full => (entity_impl(entity), columns::relation_impls(entity)),
        Mode::Stub => (stub_entity_impl(entity), TokenStream::new()),
    };
    let constants = columns::constants(entity);
    let repo = repository::expand(entity, mode);
    let repo_fn = repo.constructor;
    let repo_impls = repo.impls;
    let repo_struct = repo.definition;
    quote! {
        const _: () = {
            #[automatically_derived]
            #entity_impl
            #[automatically_derived]
            impl #ident {
                #constants
                #repo_fn
            }
            #relations
            #repo_impls
        };
        #repo_struct
    }
}

fn entity_impl(entity: &Entity<'_>) -> TokenStream {
    let p = private(&entity.root);
    let ident = entity.ident;
    let meta = columns::meta(entity);

    let keys = entity.key_fields();
    let (key_ty, key_expr) = match keys.as_slice() {
        [key] => (key_type(key), clone_field(key)),
        keys => {
            let tys = keys.iter().map(|f| key_type(f));
            let exprs = keys.iter().map(|f| clone_field(f));
            (quote!((#(#tys,)*)), quote!((#(#exprs,)*)))
        }
    };

    let bind_arms = entity.columns().map(|(i, f)| {
        let (i, member, ty, column) = (Literal::usize_suffixed(i), f.ident, f.ty, &f.column);
        if f.is_json() {
            let bind = quote_spanned!(ty.span()=> #p::bind_json::<#ty, _>);
            quote!(#i => #bind(&self.#member, b, #column),)
        } else {
            // `<T as Field>::…` at the type, in the column metadata, here
            // and in `decode_row`: an unsupported type is one error, not one
            // per use (rustc merges identical diagnostics; a generic helper
            // bounded by `Field` would add its own "required by" note).
            let field = quote_spanned!(ty.span()=> <#ty as #p::Field>);
            quote!(#i => #p::encoded(#field::bind(&self.#member, b), #column),)
        }
    });
    let table = &entity.table;

    let inits = entity.fields.iter().map(|f| {
        let (member, ty, column) = (f.ident, f.ty, &f.column);
        match f.index {
            Some(i) => {
                let i = Literal::usize_suffixed(i);
                if f.is_json() {
                    let decode = quote_spanned!(ty.span()=> #p::decode_json::<#ty, _>);
                    quote!(#member: #decode(row, offset + #i, #column)?)
                } else {
                    let field = quote_spanned!(ty.span()=> <#ty as #p::Field>);
                    quote!(#member: #p::decoded(#field::decode(row, offset + #i), #column)?)
                }
            }
            None => {
                let default =
                    quote_spanned!(ty.span()=> <#ty as ::core::default::Default>::default);
                quote!(#member: #default())
            }
        }
    });

    let set_generated_key = match entity
        .fields
        .iter()
        .find(|f| f.attrs.auto_increment.is_some())
    {
        Some(f) => {
            let (member, ty, column) = (f.ident, f.ty, &f.column);
            let set = quote_spanned!(ty.span()=> #p::set_generated_key::<#ty>);
            quote! {
                fn set_generated_key(&mut self, id: i64) -> #p::Result<()> {
                    #set(&mut self.#member, id, #column)
                }
            }
        }
        None => quote! {
            fn set_generated_key(&mut self, _id: i64) -> #p::Result<()> {
                ::core::result::Result::Ok(())
            }
        },
    };

    let (version, set_version) = match entity.fields.iter().find(|f| f.attrs.version.is_some()) {
        Some(f) => {
            let (member, ty) = (f.ident, f.ty);
            let trait_ = quote_spanned!(ty.span()=> <#ty as #p::VersionField>);
            (
                quote! {
                    fn version(&self) -> ::core::option::Option<i64> {
                        ::core::option::Option::Some(#trait_::get(self.#member))
                    }
                },
                quote! {
                    fn set_version(&mut self, v: i64) {
                        #trait_::set(&mut self.#member, v)
                    }
                },
            )
        }
        None => (
            quote! {
                fn version(&self) -> ::core::option::Option<i64> {
                    ::core::option::Option::None
                }
            },
            quote! {
                fn set_version(&mut self, _v: i64) {}
            },
        ),
    };

    let stamp = |f: &Field<'_>| {
        let (member, ty) = (f.ident, f.ty);
        let stamp = quote_spanned!(ty.span()=> <#ty as #p::TimestampField>::stamp);
        quote!(#stamp(&mut self.#member, now);)
    };
    let created = entity
        .fields
        .iter()
        .filter(|f| f.attrs.created_at.is_some())
        .map(stamp);
    let updated: Vec<_> = entity
        .fields
        .iter()
        .filter(|f| f.attrs.updated_at.is_some())
        .map(stamp)
        .collect();
    let now = |used: bool| if used { quote!(now) } else { quote!(_now) };
    let created: Vec<_> = created.chain(updated.iter().cloned()).collect();
    let (now_created, now_updated) = (now(!created.is_empty()), now(!updated.is_empty()));

    let soft_delete = match entity.fields.iter().find(|f| f.attrs.soft_delete.is_some()) {
        Some(f) => {
            let (member, ty) = (f.ident, f.ty);
            let trait_ = quote_spanned!(ty.span()=> <#ty as #p::SoftDeleteField>);
            quote! {
                fn is_soft_deleted(&self) -> bool {
                    #trait_::is_set(&self.#member)
                }
                fn set_soft_deleted(&mut self, at: ::core::option::Option<#p::DateTime<#p::Utc>>) {
                    #trait_::set(&mut self.#member, at)
                }
            }
        }
        None => TokenStream::new(),
    };
    let hooks = if entity.hooks {
        let h = quote_spanned!(ident.span()=> <Self as #p::Hooks>);
        quote! {
            fn run_before_insert(&mut self) -> ::core::result::Result<(), #p::BoxDynError> {
                #h::before_insert(self)
            }
            fn run_before_update(&mut self) -> ::core::result::Result<(), #p::BoxDynError> {
                #h::before_update(self)
            }
            fn run_before_delete(&self) -> ::core::result::Result<(), #p::BoxDynError> {
                #h::before_delete(self)
            }
            fn run_after_commit(&self, kind: #p::ChangeKind) {
                #h::after_commit(self, kind)
            }
            fn run_after_rollback(&self, kind: #p::ChangeKind) {
                #h::after_rollback(self, kind)
            }
        }
    } else {
        TokenStream::new()
    };

    quote! {
        impl #p::Entity for #ident {
            type Key = #key_ty;

            const META: &'static #p::EntityMeta = &#meta;

            #[inline]
            fn key(&self) -> Self::Key {
                #key_expr
            }

            #[inline]
            fn bind_column<__B: #p::Binder>(&self, col: usize, b: &mut __B) -> #p::Result<()> {
                match col {
                    #(#bind_arms)*
                    _ => #p::no_column(#table, col),
                }
            }

            #[inline]
            fn decode_row<__R: #p::RowReader>(row: &__R, offset: usize) -> #p::Result<Self> {
                ::core::result::Result::Ok(Self {
                    #(#inits,)*
                })
            }

            #set_generated_key

            #version

            #set_version

            fn stamp_created(&mut self, #now_created: #p::DateTime<#p::Utc>) {
                #(#created)*
            }

            fn stamp_updated(&mut self, #now_updated: #p::DateTime<#p::Utc>) {
                #(#updated)*
            }

            fn sql_cache() -> &'static #p::SqlCache {
                static CACHE: #p::SqlCache = #p::SqlCache::new();
                &CACHE
            }

            #soft_delete

            #hooks
        }
    }
}

/// The key field's type, spanned so that "not a `Key`" points at it.
fn key_type(f: &Field<'_>) -> TokenStream {
    let ty = f.ty;
    quote_spanned!(ty.span()=> #ty)
}

fn clone_field(f: &Field<'_>) -> TokenStream {
    let member = f.ident;
    quote!(::core::clone::Clone::clone(&self.#member))
}

/// An `Entity` impl that only type-checks: emitted beside the errors so that
/// code using the entity does not add "`Entity` is not implemented" errors.
fn stub_entity_impl(entity: &Entity<'_>) -> TokenStream {
    let p = private(&entity.root);
    let ident = entity.ident;
    let (name, table) = (&entity.name, &entity.table);
    // The real key type where it is well formed, so that calls with keys
    // type-check; anything else could add errors of its own.
    let keys = entity.key_fields();
    let key_ty = match keys.as_slice() {
        [key] if !key.is_json() => key_type(key),
        keys if (2..=4).contains(&keys.len()) && keys.iter().all(|k| !k.is_json()) => {
            let tys = keys.iter().map(|f| key_type(f));
            quote!((#(#tys,)*))
        }
        _ => quote!(i64),
    };
    let unimplemented = quote!(::core::unimplemented!("#[derive(Entity)] reported errors"));
    quote! {
        impl #p::Entity for #ident {
            type Key = #key_ty;
            const META: &'static #p::EntityMeta = &#p::EntityMeta {
                name: #name,
                table: #table,
                columns: &[],
                primary_key: &[],
                auto_increment: ::core::option::Option::None,
                version: ::core::option::Option::None,
                created_at: ::core::option::Option::None,
                updated_at: ::core::option::Option::None,
                relations: &[],
                cache_ttl: ::core::option::Option::None,
                soft_delete: ::core::option::Option::None,
                audit: false,
                hooks: false,
            };
            fn key(&self) -> Self::Key { #unimplemented }
            fn bind_column<__B: #p::Binder>(&self, _: usize, _: &mut __B) -> #p::Result<()> { #unimplemented }
            fn decode_row<__R: #p::RowReader>(_: &__R, _: usize) -> #p::Result<Self> { #unimplemented }
            fn set_generated_key(&mut self, _: i64) -> #p::Result<()> { #unimplemented }
            fn version(&self) -> ::core::option::Option<i64> { #unimplemented }
            fn set_version(&mut self, _: i64) { #unimplemented }
            fn stamp_created(&mut self, _: #p::DateTime<#p::Utc>) { #unimplemented }
            fn stamp_updated(&mut self, _: #p::DateTime<#p::Utc>) { #unimplemented }
            fn sql_cache() -> &'static #p::SqlCache { #unimplemented }
        }
    }
}
