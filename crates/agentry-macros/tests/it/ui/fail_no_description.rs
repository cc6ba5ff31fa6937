#[agentry_actions::action]
async fn undocumented(a: i64) -> i64 {
    a
}

fn main() {}
