//! `#[derive(Field)]`: a single-field newtype stored as its field's type.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::DeriveInput;
use syn::spanned::Spanned;

use super::{Mode, finish, private};
use crate::internals::Ctxt;
use crate::internals::ast::Newtype;

/// Expands `#[derive(Field)]` on `input`.
pub fn derive(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(err) => return err.to_compile_error(),
    };
    let cx = Ctxt::new();
    let parsed = Newtype::from_ast(&cx, &input);
    finish(cx, parsed, expand)
}

fn expand(input: &Newtype<'_>, mode: Mode) -> TokenStream {
    let p = private(&input.root);
    let (ident, member, inner) = (input.ident, &input.member, input.inner);
    // Spanned at the field's type: an inner type that is not a `Field` is
    // reported there.
    let field = quote_spanned!(inner.span()=> <#inner as #p::Field>);
    let wrap = |v: TokenStream| match member {
        syn::Member::Named(name) => quote!(Self { #name: #v }),
        syn::Member::Unnamed(_) => quote!(Self(#v)),
    };
    let wrap_decoded = wrap(quote!(#field::decode(r, i)?));
    let constructor = match member {
        syn::Member::Named(name) => quote!(|v| Self { #name: v }),
        syn::Member::Unnamed(_) => quote!(Self),
    };
    let (sql_type, nullable, bind, decode_opt, decode, to_value) = match mode {
        Mode::Full => (
            quote!(#field::SQL_TYPE),
            quote!(#field::NULLABLE),
            quote!(#field::bind(&self.#member, b)),
            quote! {
                ::core::result::Result::Ok(
                    #field::decode_opt(r, i)?.map(#constructor),
                )
            },
            quote!(::core::result::Result::Ok(#wrap_decoded)),
            quote!(#field::to_value(&self.#member)),
        ),
        Mode::Stub => {
            let unimplemented = quote!(::core::unimplemented!("#[derive(Field)] reported errors"));
            (
                quote!(#p::SqlType::Text),
                quote!(false),
                quote!({ let _ = b; #unimplemented }),
                quote!({ let _ = (r, i); #unimplemented }),
                quote!({ let _ = (r, i); #unimplemented }),
                unimplemented,
            )
        }
    };
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #p::Field for #ident {
                const SQL_TYPE: #p::SqlType = #sql_type;
                const NULLABLE: bool = #nullable;

                #[inline]
                fn bind<__B: #p::Binder>(
                    &self,
                    b: &mut __B,
                ) -> ::core::result::Result<(), #p::BoxDynError> {
                    #bind
                }

                #[inline]
                fn decode_opt<__R: #p::RowReader>(
                    r: &__R,
                    i: usize,
                ) -> ::core::result::Result<::core::option::Option<Self>, #p::BoxDynError> {
                    #decode_opt
                }

                #[inline]
                fn decode<__R: #p::RowReader>(
                    r: &__R,
                    i: usize,
                ) -> ::core::result::Result<Self, #p::BoxDynError> {
                    #decode
                }

                fn to_value(&self) -> ::core::result::Result<#p::Value, #p::BoxDynError> {
                    #to_value
                }
            }
        };
    }
}
