/// Bad option.
#[agentry_actions::action(dangerous = true)]
async fn bad(a: i64) -> i64 {
    a
}

fn main() {}
