//! Code generation from the intermediate representation.
//!
//! Each derive parses, validates and then either expands the input, or, when
//! any error was recorded, emits every error as `compile_error!` beside stub
//! impls, so that the user sees the real errors and not a cascade of
//! "trait not implemented" follow-ups (thiserror's `fallback.rs`).

mod columns;
pub mod db_enum;
pub mod entity;
pub mod newtype;
mod repository;

#[cfg(test)]
mod tests;

use proc_macro2::TokenStream;
use quote::quote;

/// Whether to expand the real code or, after errors, stubs with the same
/// items and `unimplemented!()` bodies.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Mode {
    Full,
    Stub,
}

/// The derive's output once the input is parsed (and checked): the full
/// expansion, or every recorded error beside the stubs (`expand` in
/// [`Mode::Stub`]) where the input parsed far enough for them.
fn finish<T>(
    cx: crate::internals::Ctxt,
    parsed: Option<T>,
    expand: impl Fn(&T, Mode) -> TokenStream,
) -> TokenStream {
    match (cx.check(), parsed) {
        (Ok(()), Some(parsed)) => expand(&parsed, Mode::Full),
        (Err(errors), parsed) => {
            let errors = errors.to_compile_error();
            let stub = parsed.map(|parsed| expand(&parsed, Mode::Stub));
            quote!(#errors #stub)
        }
        // `from_ast` records an error whenever it returns `None`.
        (Ok(()), None) => TokenStream::new(),
    }
}

/// The only runtime path generated code names besides `::core` and `::std`:
/// `__private` under the root the derive was given (see `ast::Entity::root`).
fn private(root: &syn::Path) -> TokenStream {
    quote!(#root::__private)
}

/// `::core::option::Option<usize>` as a constant expression.
fn option_usize(v: Option<usize>) -> TokenStream {
    match v {
        Some(i) => {
            let i = proc_macro2::Literal::usize_suffixed(i);
            quote!(::core::option::Option::Some(#i))
        }
        None => quote!(::core::option::Option::None),
    }
}
