//! The `rapport` binary as an operator runs it: first start, credentials, `keys create`, graceful shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use serde_json::Value;

struct Running {
    child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
    printed: Vec<String>,
    base: String,
}

/// Starts `rapport serve` on port 0 and reads stdout until it says where it listens.
fn serve(data_dir: &Path, env: &[(&str, &str)]) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rapport"));
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("RAPPORT_DATABASE_URL")
        .env_remove("RAPPORT_ADMIN_TOKEN")
        .env_remove("RAPPORT_ADMIN_EMAIL")
        .env_remove("RAPPORT_ADMIN_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    loop {
        let line = lines.next().expect("the server exited before listening").unwrap();
        if let Some(base) = line.strip_prefix("Rapport is listening on ") {
            return Running { child, lines, printed, base: base.trim().to_owned() };
        }
        printed.push(line);
    }
}

fn stop(mut running: Running) {
    let status = Command::new("kill").args(["-TERM", &running.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = running.child.wait().unwrap();
    assert!(exit.success(), "rapport serve exits cleanly on SIGTERM: {exit:?}");
    drop(running.lines);
}

async fn get(base: &str, path: &str, token: &str) -> (u16, Value) {
    let response = reqwest::Client::new().get(format!("{base}{path}")).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn first_start_with_operator_credentials() {
    let data = tempfile::tempdir().unwrap();
    let env = [
        ("RAPPORT_ADMIN_TOKEN", "rk_operator_chosen_token"),
        ("RAPPORT_ADMIN_EMAIL", "boss@example.com"),
        ("RAPPORT_ADMIN_PASSWORD", "a very good password"),
    ];
    let running = serve(data.path(), &env);
    assert!(running.printed.iter().any(|line| line.contains("boss@example.com")), "{:?}", running.printed);
    assert!(
        !running.printed.iter().any(|line| line.contains("shown once")),
        "nothing generated: {:?}",
        running.printed
    );
    let health = reqwest::get(format!("{}/healthz", running.base)).await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let (status, _) = get(&running.base, "/api/v1/contacts", "rk_operator_chosen_token").await;
    assert_eq!(status, 200);
    let (status, body) = get(&running.base, "/api/v1/contacts", "rk_wrong").await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")));

    // `keys create` works against the same store while the server runs.
    let output = Command::new(env!("CARGO_BIN_EXE_rapport"))
        .args(["keys", "create", "--workspace", "default", "--name", "ci", "--role", "viewer", "--data-dir"])
        .arg(data.path())
        .env_remove("RAPPORT_DATABASE_URL")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let key = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("rk_"));
    let (status, _) = get(&running.base, "/api/v1/contacts", &key).await;
    assert_eq!(status, 200);
    let (status, _) = get(&running.base, "/api/v1/api-keys", &key).await;
    assert_eq!(status, 403, "a viewer key cannot manage keys");
    stop(running);

    // A second start prints no credentials and keeps the data.
    let running = serve(data.path(), &env);
    assert!(running.printed.is_empty(), "{:?}", running.printed);
    let (status, _) = get(&running.base, "/api/v1/contacts", &key).await;
    assert_eq!(status, 200);
    stop(running);
}

#[tokio::test]
async fn first_start_generates_and_prints_credentials_once() {
    let data = tempfile::tempdir().unwrap();
    let running = serve(data.path(), &[]);
    let token = running
        .printed
        .iter()
        .find_map(|line| line.strip_prefix("Owner API key (shown once): "))
        .expect("a generated key is printed")
        .to_owned();
    assert!(running.printed.iter().any(|line| line.starts_with("Owner password")));
    let (status, _) = get(&running.base, "/api/v1/stages", &token).await;
    assert_eq!(status, 200);
    stop(running);

    let output = Command::new(env!("CARGO_BIN_EXE_rapport"))
        .args(["keys", "create", "--workspace", "nope", "--name", "x", "--data-dir"])
        .arg(data.path())
        .env_remove("RAPPORT_DATABASE_URL")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no workspace"));
}
