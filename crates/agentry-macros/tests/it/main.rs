#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/it/ui/pass_*.rs");
    t.compile_fail("tests/it/ui/fail_*.rs");
    // `#[auto_func]` (needs `agentry`, a dev-dependency).
    t.pass("tests/it/auto_func/pass_*.rs");
    t.compile_fail("tests/it/auto_func/fail_*.rs");
}
