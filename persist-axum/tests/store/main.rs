//! Placeholder: the store tests are written next.
