//! Placeholder: the layer tests are written next.
