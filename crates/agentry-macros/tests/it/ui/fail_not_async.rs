/// Not async.
#[agentry_actions::action]
fn sync_one(a: i64) -> i64 {
    a
}

fn main() {}
