//! `--format prometheus` and `--textfile` output, linted by Prometheus's own
//! `promtool check metrics` (Debian's `prometheus` package, installed by
//! scripts/test.sh); and the config file as the CLI sees it.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("promtool");
    }
    if std::env::var_os("CI").is_some() || std::env::var_os("DOCKGC_REQUIRE_DOCKER").is_some() {
        panic!("promtool is missing: scripts/test.sh installs Debian's prometheus package");
    }
    eprintln!("SKIPPED: promtool not installed (apt-get install prometheus)");
    None
}

/// Runs `promtool check metrics` on `text`; panics with its complaints.
fn lint(tool: &str, text: &str) {
    use std::io::Write;
    let mut child = Command::new(tool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n---\n{text}"
    );
}

fn demo_root(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("root");
    dockgc::synth::generate(&root, &dockgc::synth::SynthSpec::demo()).unwrap();
    root
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = support::dockgc().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_command_s_metrics_pass_promtool() {
    let Some(tool) = promtool() else { return };
    let t = tempfile::tempdir().unwrap();
    let root = demo_root(t.path());
    let r = root.to_str().unwrap();
    for args in [
        vec!["--root", r, "df", "--format", "prometheus"],
        vec!["--root", r, "df", "--disk", "--format", "prometheus"],
        vec!["--root", r, "verify", "--format", "prometheus"],
        vec![
            "--root",
            r,
            "prune",
            "-a",
            "--orphans",
            "--grace",
            "0s",
            "--dry-run",
            "--format",
            "prometheus",
        ],
        vec![
            "--root",
            r,
            "prune",
            "-a",
            "--orphans",
            "--grace",
            "0s",
            "--yes",
            "--format",
            "prometheus",
        ],
    ] {
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, 0, "{args:?}: {stderr}");
        lint(tool, &stdout);
        assert!(
            stdout.contains("dockgc_last_run_timestamp_seconds{command="),
            "{stdout}"
        );
        assert!(
            !stdout.contains("sha256:"),
            "no unbounded ID labels: {stdout}"
        );
    }
    let (_, stdout, _) = run(&[
        "--root",
        r,
        "prune",
        "-a",
        "--yes",
        "--format",
        "prometheus",
    ]);
    lint(tool, &stdout);
}

#[test]
fn textfile_is_written_atomically_and_matches_stdout_metrics() {
    let Some(tool) = promtool() else { return };
    let t = tempfile::tempdir().unwrap();
    let root = demo_root(t.path());
    let file = t.path().join("dockgc_verify.prom");
    let (code, stdout, _) = run(&[
        "--root",
        root.to_str().unwrap(),
        "verify",
        "--textfile",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("error(s)"),
        "table output still goes to stdout"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    lint(tool, &text);
    assert!(
        text.contains("dockgc_verify_errors{store=\"graphdriver\"} 0"),
        "{text}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".dockgc-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temp files left beside the textfile"
    );
}

#[test]
fn config_file_sets_root_and_policy_and_errors_name_key_and_line() {
    let t = tempfile::tempdir().unwrap();
    let root = demo_root(t.path());
    let cfg = t.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "root = {:?}\n\n[prune]\nall = true\nkeep = [\"synth/*\"]\n",
            root.display().to_string()
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let (code, stdout, stderr) = run(&["--config", c, "config", "check"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("all = true") && stdout.contains("synth/*"),
        "{stdout}"
    );

    // The config's policy applies: -a with every synth/* image kept.
    let (code, stdout, stderr) = run(&["--config", c, "prune", "--dry-run", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        v["plan"]["kept"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["reason"].as_str().unwrap().contains("synth/*"))
    );
    // A flag overrides the config: --keep replaces the config's list.
    let (_, stdout, _) = run(&[
        "--config",
        c,
        "prune",
        "--dry-run",
        "--format",
        "json",
        "--keep",
        "nothing-matches",
    ]);
    let v2: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        v2["plan"]["images"].as_array().unwrap().len()
            > v["plan"]["images"].as_array().unwrap().len()
    );

    std::fs::write(&cfg, "[prune]\nall = true\n\nkeep-lastt = 3\n").unwrap();
    let (code, _, stderr) = run(&["--config", c, "config", "check"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("line 4") && stderr.contains("keep-lastt") && stderr.contains(c),
        "{stderr}"
    );
    let (code, _, stderr) = run(&["--config", "/nonexistent/dockgc.toml", "df"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent/dockgc.toml"), "{stderr}");
}

#[test]
fn json_logs_are_one_object_per_line_and_quiet_silences_them() {
    let t = tempfile::tempdir().unwrap();
    let root = demo_root(t.path());
    let r = root.to_str().unwrap();
    let (code, _, stderr) = run(&["--root", r, "--log-format", "json", "prune", "-a", "--yes"]);
    assert_eq!(code, 0, "{stderr}");
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let done = events
        .iter()
        .find(|e| e["event"] == "prune.done")
        .expect("prune logs what it removed");
    assert!(done["removed"]["images"].as_u64().unwrap() > 0);
    assert!(done["reclaimed"]["total"].as_u64().unwrap() > 0);
    let (_, _, stderr) = run(&["--root", r, "--quiet", "verify"]);
    assert!(stderr.is_empty(), "{stderr}");
    let (code, _, stderr) = run(&[
        "--root",
        "/nonexistent/root",
        "--quiet",
        "--log-format",
        "json",
        "df",
    ]);
    assert_eq!(code, 2);
    let e: serde_json::Value = serde_json::from_str(stderr.trim()).unwrap();
    assert_eq!(e["level"], "error");
    assert!(e["message"].as_str().unwrap().contains("/nonexistent/root"));
}
