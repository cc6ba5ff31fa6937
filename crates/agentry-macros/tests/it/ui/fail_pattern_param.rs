/// Pattern parameter.
#[agentry_actions::action]
async fn pattern((a, b): (i64, i64)) -> i64 {
    a + b
}

fn main() {}
