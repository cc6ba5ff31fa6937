/// Generic.
#[agentry_actions::action]
async fn generic<T: Default>(a: i64) -> i64 {
    a
}

fn main() {}
