//! `#[derive(DbEnum)]`: a unit-only enum stored as text.

use proc_macro2::TokenStream;
use quote::quote;
use syn::DeriveInput;

use super::{Mode, finish, private};
use crate::internals::ast::Enum;
use crate::internals::{Ctxt, check};

/// Expands `#[derive(DbEnum)]` on `input`.
pub fn derive(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(err) => return err.to_compile_error(),
    };
    let cx = Ctxt::new();
    let parsed = Enum::from_ast(&cx, &input);
    if let Some(parsed) = &parsed {
        check::check_enum(&cx, parsed);
    }
    finish(cx, parsed, expand)
}

fn expand(input: &Enum<'_>, mode: Mode) -> TokenStream {
    let p = private(&input.root);
    let ident = input.ident;
    let (as_str, from_str) = match mode {
        Mode::Full => {
            let to_text = input.variants.iter().map(|v| {
                let (variant, stored) = (v.ident, &v.stored);
                quote!(Self::#variant => #stored,)
            });
            let from_text = input.variants.iter().map(|v| {
                let (variant, stored) = (v.ident, &v.stored);
                quote!(#stored => ::core::option::Option::Some(Self::#variant),)
            });
            (
                quote!(match *self { #(#to_text)* }),
                quote!(match s { #(#from_text)* _ => ::core::option::Option::None, }),
            )
        }
        Mode::Stub => {
            let unimplemented = quote!(::core::unimplemented!("#[derive(DbEnum)] reported errors"));
            (unimplemented.clone(), quote!({ let _ = s; #unimplemented }))
        }
    };
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #p::DbEnum for #ident {
                fn as_str(&self) -> &'static str {
                    #as_str
                }

                fn from_str(s: &str) -> ::core::option::Option<Self> {
                    #from_str
                }
            }

            #[automatically_derived]
            impl #p::Field for #ident {
                const SQL_TYPE: #p::SqlType = #p::SqlType::Text;

                #[inline]
                fn bind<__B: #p::Binder>(
                    &self,
                    b: &mut __B,
                ) -> ::core::result::Result<(), #p::BoxDynError> {
                    #p::enum_field::bind(self, b)
                }

                #[inline]
                fn decode_opt<__R: #p::RowReader>(
                    r: &__R,
                    i: usize,
                ) -> ::core::result::Result<::core::option::Option<Self>, #p::BoxDynError> {
                    #p::enum_field::decode_opt(r, i)
                }

                fn to_value(&self) -> ::core::result::Result<#p::Value, #p::BoxDynError> {
                    #p::enum_field::to_value(self)
                }
            }
        };
    }
}
