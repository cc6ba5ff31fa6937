// A facade that re-exports the runtime under another path.
mod facade {
    pub use agentry_actions as actions;
}

use agentry_actions::Action;

/// Echoes.
#[agentry_actions::action(crate = "crate::facade::actions")]
async fn echo(text: String) -> String {
    text
}

fn main() {
    assert_eq!(Echo.id(), "echo");
}
