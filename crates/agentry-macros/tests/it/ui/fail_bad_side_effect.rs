/// Bad side effect.
#[agentry_actions::action(side_effect = "delete")]
async fn bad(a: i64) -> i64 {
    a
}

fn main() {}
