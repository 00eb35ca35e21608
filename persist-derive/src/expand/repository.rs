//! The repository type `<Name>Repo` and its generated finders.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{Mode, private};
use crate::internals::ast::{Entity, Field};

/// The pieces of the repository, placed by the caller: the struct outside
/// the `const _` block so that users can name it, the rest inside.
pub struct Repository {
    /// `pub struct AccountRepo<'s> { … }`.
    pub definition: TokenStream,
    /// `pub fn repo(session) -> AccountRepo`, for the entity's inherent impl.
    pub constructor: TokenStream,
    /// `Deref` to `Repo`, and the finder methods.
    pub impls: TokenStream,
}

/// Expands the repository of an entity.
pub fn expand(entity: &Entity<'_>, mode: Mode) -> Repository {
    let p = private(&entity.root);
    let (ident, vis) = (entity.ident, entity.vis);
    let repo = format_ident!("{}Repo", entity.name, span = ident.span());

    let struct_doc = format!(
        " Repository of [`{}`]: the generic operations of `Repo` (through `Deref`) plus finders generated from the field attributes.",
        entity.name
    );
    let definition = quote! {
        #[doc = #struct_doc]
        #[derive(::core::clone::Clone, ::core::marker::Copy, ::core::fmt::Debug)]
        #vis struct #repo<'s> {
            inner: #p::Repo<'s, #ident>,
        }
    };

    let constructor_doc = format!(" The repository of `{}` on a session.", entity.name);
    let constructor = quote! {
        #[doc = #constructor_doc]
        pub fn repo(session: &#p::Session) -> #repo<'_> {
            #repo { inner: #p::Repo::new(session) }
        }
    };

    let finders = entity.columns().map(|(_, f)| finders(entity, f, mode));
    let impls = quote! {
        #[automatically_derived]
        impl<'s> ::core::ops::Deref for #repo<'s> {
            type Target = #p::Repo<'s, #ident>;
            #[inline]
            fn deref(&self) -> &Self::Target {
                &self.inner
            }
        }

        #[automatically_derived]
        impl<'s> #repo<'s> {
            #(#finders)*
        }
    };
    Repository {
        definition,
        constructor,
        impls,
    }
}

/// `find_by_x` / `exists_by_x` for a unique non-key field, `find_all_by_x`
/// for an indexed or referencing one.
fn finders(entity: &Entity<'_>, f: &Field<'_>, mode: Mode) -> TokenStream {
    let p = private(&entity.root);
    let (ident, member, ty, column) = (entity.ident, f.ident, f.ty, &f.column);
    let constant = f.const_name();
    let (name, table) = (&f.name, &entity.table);
    let body = |method: TokenStream| match mode {
        Mode::Full => quote! {
            self.inner.#method(#ident::#constant, ::core::convert::Into::into(#member)).await
        },
        Mode::Stub => quote! {
            let _ = #member;
            ::core::unimplemented!("#[derive(Entity)] reported errors")
        },
    };
    let mut out = TokenStream::new();
    // A `unique_live` value names at most one of the rows reads see.
    if (f.is_unique() || f.is_unique_live()) && !f.is_primary_key() {
        let (find, exists) = (
            format_ident!("find_by_{}", name),
            format_ident!("exists_by_{}", name),
        );
        let find_doc = format!(
            " Finds the `{}` whose `{name}` equals the value (unique column `{column}` of `{table}`).",
            entity.name
        );
        let exists_doc = format!(
            " Whether some `{}` with this `{name}` exists (column `{column}` of `{table}`).",
            entity.name
        );
        let (find_body, exists_body) = (body(quote!(find_one_by)), body(quote!(exists_by)));
        out.extend(quote! {
            #[doc = #find_doc]
            pub async fn #find(
                &self,
                #member: impl ::core::convert::Into<#ty>,
            ) -> #p::Result<::core::option::Option<#ident>> {
                #find_body
            }

            #[doc = #exists_doc]
            pub async fn #exists(&self, #member: impl ::core::convert::Into<#ty>) -> #p::Result<bool> {
                #exists_body
            }
        });
    }
    if f.is_indexed() {
        let find_all = format_ident!("find_all_by_{}", name);
        let doc = format!(
            " Every `{}` whose `{name}` equals the value (indexed column `{column}` of `{table}`).",
            entity.name
        );
        let find_all_body = body(quote!(find_all_by));
        out.extend(quote! {
            #[doc = #doc]
            pub async fn #find_all(
                &self,
                #member: impl ::core::convert::Into<#ty>,
            ) -> #p::Result<::std::vec::Vec<#ident>> {
                #find_all_body
            }
        });
    }
    out
}
