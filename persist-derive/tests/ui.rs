//! Compile tests of the derives: every bad input is one error at its span,
//! and good input (including the generated finders) compiles warning-free.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*/*.rs");
    t.pass("tests/pass/*.rs");
}
