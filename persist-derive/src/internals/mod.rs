//! Parsing and validation of derive input, up to the intermediate
//! representation that `expand` turns into code.

pub mod ast;
pub mod attr;
pub mod case;
pub mod check;
mod ctxt;
pub mod symbol;

pub use ctxt::Ctxt;
