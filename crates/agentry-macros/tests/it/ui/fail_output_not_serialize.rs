struct NotSerialize;

/// Bad output.
#[agentry_actions::action]
async fn bad(a: i64) -> NotSerialize {
    let _ = a;
    NotSerialize
}

fn main() {}
