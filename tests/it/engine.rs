//! Tests for the engine and CLI (issue: mtn run).

use crate::support::*;

#[test]
fn trivial_script_exits_zero() {
    let d = tempdir();
    run_script(
        d.path(),
        "ok.rhai",
        "let x = 1 + 1; assert(x == 2, \"math\");",
        &[],
    )
    .expect_code(0);
}
