use serde_json::Value;

use crate::{agentry, output, stderr, stdout};

#[tokio::test]
async fn config_check_reports_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("agentry.toml"),
        r#"
default_model = "default"
[models.default]
base_url = "http://127.0.0.1:9/v1"
model = "m1"
api_key_env = "MY_KEY"

[models.planner]
provider = "test"

[limits]
max_seconds = 30
"#,
    )
    .unwrap();
    let mut cmd = agentry(dir.path());
    cmd.env("MY_KEY", "sk-config-check-999")
        .args(["config", "check", "--json"]);
    let o = output(cmd).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(!out.contains("sk-config-check-999"));
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["selected_model"], "default");
    assert_eq!(v["models"][0]["api_key_present"], true);
    assert_eq!(v["limits"]["max_seconds"], 30.0);
    assert_eq!(v["models"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn broken_config_is_one_actionable_line() {
    let dir = tempfile::tempdir().unwrap();
    for (content, needle) in [
        ("[models.default\nmodel = 1", "agentry.toml"),
        ("[models.default]\nprovider = \"bogus\"\n", "agentry.toml"),
        ("[models.default]\nmodel = \"m\"\n", "base_url"),
        ("[limits]\nmax_seconds = -5\n", "max_seconds"),
        ("unknown_key = 1\n", "unknown"),
    ] {
        std::fs::write(dir.path().join("agentry.toml"), content).unwrap();
        let mut cmd = agentry(dir.path());
        cmd.args(["config", "check"]);
        let o = output(cmd).await;
        assert_eq!(o.status.code(), Some(2), "{content}");
        let err = stderr(&o);
        assert_eq!(err.trim().lines().count(), 1, "{content}: {err}");
        assert!(err.contains(needle), "{content}: {err}");
        // `run` refuses the same config the same way.
        let mut cmd = agentry(dir.path());
        cmd.args(["run", "x"]);
        assert_eq!(output(cmd).await.status.code(), Some(2));
    }
}
