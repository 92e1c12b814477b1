//! The packaging under `packaging/` and `scripts/build-deb.sh`: the systemd
//! units pass `systemd-analyze verify` and a hardening threshold, and their
//! command lines run against a synthetic root; the cron file parses as an
//! /etc/cron.d file and its commands run; the config example is valid key by
//! key; the DaemonSet mounts the data root read-only and writes nowhere but
//! the textfile directory, and its loops run; the .deb has the expected
//! files, installs into a scratch root (and, in CI, on the machine), runs,
//! and removes cleanly.
//!
//! Tools: systemd-analyze (`systemd`), python3 with PyYAML (`python3-yaml`),
//! dpkg-deb and dpkg (Essential), dpkg-shlibdeps (`dpkg-dev`) and cargo-deb
//! (installed by scripts/build-deb.sh from crates.io). A missing tool fails
//! the test in CI (`CI` set) and prints SKIPPED otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const TEXTFILE_DIR: &str = "/var/lib/prometheus/node-exporter";
const DATA_ROOT: &str = "/var/lib/docker";
const SERVICES: [&str; 3] = ["dockgc-df", "dockgc-verify", "dockgc-prune"];
/// PATH for dpkg and the scripts, as root's login shell has it.
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dockgc")
}

fn read(rel: &str) -> String {
    let p = repo().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// A tool the test needs is missing: a failure in CI, a loud skip elsewhere.
fn unavailable(what: &str) {
    if in_ci() {
        panic!("{what} (CI is set, so this is a failure; scripts/test.sh should install it)");
    }
    // Straight to the stderr handle: libtest captures `eprintln!` of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED: packaging test skipped: {what}. Set CI=1 to make this a failure. ***\n"
    );
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn describe(cmd: &str, out: &Output) -> String {
    format!(
        "{cmd}: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(std::env::split_paths(SYSTEM_PATH))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A synthetic data root (the demo's: images, containers, orphans, leftovers)
/// and an empty config file, so a config on the machine running the tests
/// cannot change the results.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        dockgc::synth::generate(&dir.path().join("root"), &dockgc::synth::SynthSpec::demo())
            .unwrap();
        std::fs::write(dir.path().join("config.toml"), "").unwrap();
        std::fs::create_dir(dir.path().join("textfile")).unwrap();
        Scratch { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn root(&self) -> PathBuf {
        self.path().join("root")
    }
    fn config(&self) -> PathBuf {
        self.path().join("config.toml")
    }
    fn textfile_dir(&self) -> PathBuf {
        self.path().join("textfile")
    }

    /// Runs a shipped dockgc command line (`/usr/bin/dockgc ...`, already
    /// split into words) on the scratch root, with the textfile directory
    /// moved into the scratch dir.
    fn run_shipped(&self, words: &[String]) -> Output {
        assert_eq!(
            words.first().map(String::as_str),
            Some("/usr/bin/dockgc"),
            "{words:?}"
        );
        let textfile = self.textfile_dir();
        let args: Vec<String> = words[1..]
            .iter()
            .map(|w| w.replace(TEXTFILE_DIR, &textfile.to_string_lossy()))
            .collect();
        output(
            Command::new(bin())
                .arg("--root")
                .arg(self.root())
                .arg("--config")
                .arg(self.config())
                .args(&args)
                .env_remove("DOCKGC_ROOT")
                .env_remove("DOCKGC_CONFIG")
                .env_remove("DOCKER_HOST")
                .stdin(Stdio::null()),
        )
    }

    /// The `dockgc_last_run_timestamp_seconds` line for `command` in the
    /// textfile `name`, if the file exists.
    fn last_run(&self, dir: &Path, name: &str, command: &str) -> Option<String> {
        let body = std::fs::read_to_string(dir.join(name)).ok()?;
        let key = format!("dockgc_last_run_timestamp_seconds{{command=\"{command}\"}}");
        body.lines()
            .find(|l| l.starts_with(&key))
            .map(str::to_string)
    }
}

// ---------------------------------------------------------------------------
// systemd

/// `[Section]` -> key -> values, in order (keys may repeat), of a unit file.
fn parse_unit(text: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        assert!(!line.ends_with('\\'), "no continuation lines: {line}");
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not key=value: {line}"));
        out.entry(section.clone())
            .or_default()
            .push((k.trim().to_string(), v.trim().to_string()));
    }
    out
}

fn values<'a>(
    unit: &'a BTreeMap<String, Vec<(String, String)>>,
    section: &str,
    key: &str,
) -> Vec<&'a str> {
    unit.get(section)
        .into_iter()
        .flatten()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn one<'a>(unit: &'a BTreeMap<String, Vec<(String, String)>>, section: &str, key: &str) -> &'a str {
    match values(unit, section, key).as_slice() {
        [v] => v,
        other => panic!("[{section}] {key}: expected one value, found {other:?}"),
    }
}

fn words_set(v: &[&str]) -> BTreeSet<String> {
    v.iter()
        .flat_map(|s| s.split_whitespace())
        .map(str::to_string)
        .collect()
}

/// `KEY="value"` lines of packaging/default/dockgc, and the `For example "..."`
/// flags the comment above each one suggests.
fn default_env() -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    let mut examples = Vec::new();
    for line in read("packaging/default/dockgc").lines() {
        let line = line.trim();
        if let Some(c) = line.strip_prefix('#') {
            if let Some(rest) = c.split_once("For example \"").map(|(_, r)| r) {
                let ex = rest.split('"').next().unwrap();
                examples.push(ex.to_string());
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let (k, v) = line.split_once('=').expect("KEY=value");
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        out.push((k.to_string(), v.to_string(), std::mem::take(&mut examples)));
    }
    out
}

/// An ExecStart= line split into words as systemd does for ours (no quotes),
/// with `$VAR` expanded to the words of `env[VAR]`.
fn exec_words(line: &str, env: &BTreeMap<String, String>) -> Vec<String> {
    assert!(
        !line.contains(['"', '\'', '%', '\\']),
        "no quoting or specifiers expected: {line}"
    );
    let mut out = Vec::new();
    for w in line.split_whitespace() {
        match w.strip_prefix('$') {
            Some(var) => {
                assert!(!var.starts_with('{'), "use $VAR (split into words): {w}");
                let v = env
                    .get(var)
                    .unwrap_or_else(|| panic!("{var} is not in packaging/default/dockgc"));
                out.extend(v.split_whitespace().map(str::to_string));
            }
            None => out.push(w.to_string()),
        }
    }
    out
}

/// The script of an `/bin/sh -c '...'` command of a unit, unescaped (`$$`).
fn sh_script(value: &str, prefix: &str) -> String {
    let body = value
        .strip_prefix(prefix)
        .and_then(|v| v.strip_prefix("/bin/sh -c '"))
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or_else(|| panic!("expected {prefix}/bin/sh -c '...': {value}"));
    assert!(!body.contains(['\'', '%']), "{body}");
    body.replace("$$", "$")
}

/// Copies of the units (and the opt-in drop-in) whose ExecStart points at the
/// built binary, since systemd-analyze checks that it exists.
fn unit_copies() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for entry in std::fs::read_dir(repo().join("packaging/systemd")).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let body = std::fs::read_to_string(&p).unwrap();
        if name.ends_with(".service") || name.ends_with(".timer") {
            let dest = dir.path().join(&name);
            std::fs::write(&dest, body.replace("/usr/bin/dockgc", bin())).unwrap();
            units.push(dest);
        } else if name == "stop-docker.conf" {
            let d = dir.path().join("dockgc-prune.service.d");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(&name), body).unwrap();
        } else {
            panic!("unexpected file packaging/systemd/{name}");
        }
    }
    units.sort();
    (dir, units)
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let Some(sa) = find_program("systemd-analyze") else {
        return unavailable("no systemd-analyze (apt-get install systemd)");
    };
    let (dir, units) = unit_copies();
    assert_eq!(units.len(), 6, "{units:?}");
    let out = output(Command::new(&sa).arg("verify").arg("--man=no").args(&units));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    // Anything it says about our units or the drop-in is a finding; other
    // lines (about the machine's own units) are only shown.
    let ours: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("dockgc") || l.contains(&*dir.path().to_string_lossy()))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify: {}\n{all}",
        out.status
    );
    if !all.trim().is_empty() {
        let _ = writeln!(
            std::io::stderr(),
            "systemd-analyze verify (not about dockgc):\n{all}"
        );
    }
}

#[test]
fn systemd_services_are_sandboxed() {
    for name in SERVICES {
        let unit = parse_unit(&read(&format!("packaging/systemd/{name}.service")));
        let s = "Service";
        assert_eq!(one(&unit, s, "Type"), "oneshot", "{name}");
        for (k, v) in [
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("PrivateDevices", "yes"),
            ("PrivateNetwork", "yes"),
            ("NoNewPrivileges", "yes"),
            ("RestrictAddressFamilies", "AF_UNIX"),
            ("ProtectKernelTunables", "yes"),
            ("ProtectKernelModules", "yes"),
            ("ProtectKernelLogs", "yes"),
            ("ProtectControlGroups", "yes"),
            ("RestrictNamespaces", "yes"),
            ("RestrictSUIDSGID", "yes"),
            ("MemoryDenyWriteExecute", "yes"),
            ("SystemCallArchitectures", "native"),
        ] {
            assert_eq!(one(&unit, s, k), v, "{name}: {k}");
        }
        // The liveness check scans /proc and reads /proc/locks.
        assert!(values(&unit, s, "ProtectProc").is_empty(), "{name}");
        assert!(values(&unit, s, "ProcSubset").is_empty(), "{name}");
        let (rw, caps): (&[&str], &[&str]) = if name == "dockgc-prune" {
            (
                &[DATA_ROOT, TEXTFILE_DIR],
                &["CAP_DAC_OVERRIDE", "CAP_FOWNER"],
            )
        } else {
            (&[TEXTFILE_DIR], &["CAP_DAC_READ_SEARCH"])
        };
        assert_eq!(
            words_set(&values(&unit, s, "ReadWritePaths")),
            rw.iter().map(|s| s.to_string()).collect(),
            "{name}: the only writable paths"
        );
        assert_eq!(
            words_set(&values(&unit, s, "CapabilityBoundingSet")),
            caps.iter().map(|s| s.to_string()).collect(),
            "{name}: capabilities"
        );
        assert!(
            one(&unit, s, "ExecStart").starts_with("/usr/bin/dockgc "),
            "{name}"
        );
        assert_eq!(
            values(&unit, s, "EnvironmentFile"),
            ["-/etc/default/dockgc"],
            "{name}"
        );
        let timer = parse_unit(&read(&format!("packaging/systemd/{name}.timer")));
        assert_eq!(
            one(&timer, "Install", "WantedBy"),
            "timers.target",
            "{name}"
        );
        assert!(!one(&timer, "Timer", "OnCalendar").is_empty(), "{name}");
        assert!(
            values(&timer, "Timer", "Unit").is_empty(),
            "{name}: same name as its service"
        );
    }
}

#[test]
fn systemd_services_meet_the_exposure_threshold() {
    let Some(sa) = find_program("systemd-analyze") else {
        return unavailable("no systemd-analyze (apt-get install systemd)");
    };
    let (_dir, units) = unit_copies();
    for unit in units
        .iter()
        .filter(|u| u.extension().is_some_and(|e| e == "service"))
    {
        // 0 (sandboxed) to 10 (unsafe); these score 1.4 on systemd 252.
        let out = output(
            Command::new(&sa)
                .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
                .arg(unit),
        );
        let all = text(&out.stdout);
        let level = all
            .lines()
            .find_map(|l| {
                l.split_once("Overall exposure level for ")?
                    .1
                    .split_once(": ")
            })
            .and_then(|(_, rest)| rest.split_whitespace().next()?.parse::<f64>().ok());
        assert!(
            out.status.success() && level.is_some_and(|l| l <= 2.0),
            "{}: exposure {level:?} above 2.0 or analysis failed\n{}",
            unit.display(),
            describe("systemd-analyze security", &out)
        );
    }
}

#[test]
fn systemd_service_commands_run_with_the_shipped_and_example_flags() {
    let env = default_env();
    let keys: BTreeSet<&str> = env.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["DOCKGC_DF_ARGS", "DOCKGC_VERIFY_ARGS", "DOCKGC_PRUNE_ARGS"])
    );
    for (key, value, examples) in &env {
        assert_eq!(value, "", "{key} ships empty");
        assert_eq!(examples.len(), 1, "{key}: one example flag in its comment");
    }
    for name in SERVICES {
        let command = name.strip_prefix("dockgc-").unwrap();
        let unit = parse_unit(&read(&format!("packaging/systemd/{name}.service")));
        let exec = one(&unit, "Service", "ExecStart");
        let key = format!("DOCKGC_{}_ARGS", command.to_uppercase());
        assert!(exec.ends_with(&format!(" ${key}")), "{name}: {exec}");
        assert!(
            exec.contains(&format!(" --textfile {TEXTFILE_DIR}/dockgc_{command}.prom")),
            "{name}: {exec}"
        );
        let example = &env.iter().find(|(k, _, _)| *k == key).unwrap().2[0];
        // The unit's own Environment= (DOCKGC_PRUNE_MODE, empty) and the drop-in's.
        let unit_env: Vec<(String, String)> = values(&unit, "Service", "Environment")
            .iter()
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("Environment=KEY=value");
                (k.to_string(), v.to_string())
            })
            .collect();
        for extra in ["", example.as_str()] {
            // A fresh root each time: prune changes it.
            let scratch = Scratch::new();
            let mut vars = BTreeMap::from([(key.clone(), extra.to_string())]);
            vars.extend(unit_env.iter().cloned());
            let words = exec_words(exec, &vars);
            let out = scratch.run_shipped(&words);
            assert!(
                out.status.success(),
                "{}",
                describe(&format!("{name} with {key}={extra:?}"), &out)
            );
            let file = format!("dockgc_{command}.prom");
            assert!(
                scratch
                    .last_run(&scratch.textfile_dir(), &file, command)
                    .is_some(),
                "{name}: no {file} with a last-run timestamp"
            );
            let mode = std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(scratch.textfile_dir().join(&file))
                    .unwrap()
                    .permissions(),
            );
            assert_eq!(mode & 0o777, 0o644, "{file}: node-exporter must read it");
        }
    }
}

/// A `systemctl` stand-in: logs its arguments and reports unit states from
/// `$STATE_docker_socket` / `$STATE_docker_service` (`error`: fails without
/// printing a state, as when the manager cannot be reached).
fn fake_systemctl(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = r#"#!/bin/sh
echo "$*" >>"$SYSTEMCTL_LOG"
quiet=
[ "$1" = -q ] && { quiet=1; shift; }
case "$1" in
is-active)
    var=STATE_$(echo "$2" | tr . _)
    eval "state=\${$var:-inactive}"
    if [ "$state" = error ]; then echo "Failed to connect to bus" >&2; exit 1; fi
    [ -n "$quiet" ] || echo "$state"
    [ "$state" = active ]
    ;;
*) exit 0 ;;
esac
"#;
    let p = bin.join("systemctl");
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    bin
}

fn run_sh(script: &str, bin: &Path, log: &Path, states: (&str, &str)) -> Output {
    output(
        Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .env("PATH", format!("{}:{SYSTEM_PATH}", bin.display()))
            .env("SYSTEMCTL_LOG", log)
            .env("STATE_docker_socket", states.0)
            .env("STATE_docker_service", states.1),
    )
}

/// The prune service runs whether Docker runs or not (dockgc picks live or
/// offline); only the stop-Docker drop-in forces offline.
#[test]
fn prune_service_runs_live_unless_the_drop_in_stops_docker() {
    let unit = parse_unit(&read("packaging/systemd/dockgc-prune.service"));
    assert!(
        values(&unit, "Service", "ExecCondition").is_empty(),
        "no skip condition: a live host is pruned through its daemon"
    );
    let start = one(&unit, "Service", "ExecStart");
    let words: Vec<&str> = start.split_whitespace().collect();
    assert!(
        words.contains(&"prune") && words.contains(&"--yes"),
        "{start}"
    );
    assert!(
        !words.iter().any(|w| *w == "--offline" || *w == "--live"),
        "the mode is dockgc's choice by default: {start}"
    );
    assert!(words.contains(&"$DOCKGC_PRUNE_MODE"), "{start}");
    assert_eq!(
        values(&unit, "Service", "Environment"),
        ["DOCKGC_PRUNE_MODE="],
        "defined and empty: zero words"
    );
    let conf = parse_unit(&read("packaging/systemd/stop-docker.conf"));
    assert_eq!(
        values(&conf, "Service", "Environment"),
        ["DOCKGC_PRUNE_MODE=--offline"],
        "with Docker stopped for it, the prune is offline or refused"
    );
    // What systemd passes, with and without the drop-in, prunes a root no
    // daemon runs on (offline either way).
    for mode in [&[][..], &["--offline"][..]] {
        let scratch = Scratch::new();
        let mut words: Vec<String> = ["/usr/bin/dockgc", "prune", "--yes"]
            .map(String::from)
            .to_vec();
        words.extend(mode.iter().map(|m| m.to_string()));
        let out = scratch.run_shipped(&words);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{mode:?}: {}",
            describe("dockgc", &out)
        );
    }
}

#[test]
fn stop_docker_drop_in_restarts_what_was_running() {
    let conf = parse_unit(&read("packaging/systemd/stop-docker.conf"));
    let marker = "/run/dockgc-prune.restart";
    for (states, restarted) in [
        (("active", "active"), "docker.socket docker.service"),
        (("inactive", "active"), "docker.service"),
        (("active", "inactive"), "docker.socket"),
        (("inactive", "inactive"), ""),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_systemctl(dir.path());
        let log = dir.path().join("log");
        let m = dir.path().join("restart");
        let pre = sh_script(one(&conf, "Service", "ExecStartPre"), "+")
            .replace(marker, &m.to_string_lossy());
        let post = sh_script(one(&conf, "Service", "ExecStopPost"), "+")
            .replace(marker, &m.to_string_lossy());
        let out = run_sh(&pre, &bin, &log, states);
        assert!(out.status.success(), "{}", describe("ExecStartPre", &out));
        let calls = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            calls.lines().last(),
            Some("stop docker.socket docker.service"),
            "{states:?}: {calls}"
        );
        // Docker is stopped now, whatever ran before.
        let out = run_sh(&post, &bin, &log, ("inactive", "inactive"));
        assert!(out.status.success(), "{}", describe("ExecStopPost", &out));
        let calls = std::fs::read_to_string(&log).unwrap();
        let starts: Vec<&str> = calls.lines().filter(|l| l.contains("start")).collect();
        if restarted.is_empty() {
            assert!(starts.is_empty(), "{states:?}: {calls}");
        } else {
            assert_eq!(
                starts,
                [format!("--no-block start {restarted}")],
                "{states:?}: {calls}"
            );
        }
        assert!(!m.exists(), "the marker is removed");
    }
}

#[test]
fn unit_documentation_names_generated_man_pages() {
    let dir = tempfile::tempdir().unwrap();
    let out = output(Command::new(bin()).arg("man").arg("--dir").arg(dir.path()));
    assert!(out.status.success(), "{}", describe("dockgc man", &out));
    for entry in std::fs::read_dir(repo().join("packaging/systemd")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "conf") {
            continue;
        }
        let unit = parse_unit(&std::fs::read_to_string(&p).unwrap());
        let docs = values(&unit, "Unit", "Documentation");
        assert!(!docs.is_empty(), "{}", p.display());
        for page in docs.iter().flat_map(|d| d.split_whitespace()) {
            let name = page
                .strip_prefix("man:")
                .and_then(|n| n.strip_suffix("(1)"))
                .unwrap_or_else(|| panic!("{}: {page}", p.display()));
            assert!(
                dir.path().join(format!("{name}.1")).is_file(),
                "{}: no man page {name}.1",
                p.display()
            );
        }
    }
}

// ---------------------------------------------------------------------------
// cron

fn cron_field_ok(field: &str, lo: u32, hi: u32) -> bool {
    field.split(',').all(|item| {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        let step_ok = step.is_none_or(|s| s.parse::<u32>().is_ok_and(|n| n >= 1 && n <= hi));
        let num = |s: &str| s.parse::<u32>().ok().filter(|n| (lo..=hi).contains(n));
        let range_ok = match range.split_once('-') {
            _ if range == "*" => true,
            Some((a, b)) => matches!((num(a), num(b)), (Some(a), Some(b)) if a <= b),
            None => num(range).is_some() && step.is_none(),
        };
        step_ok && range_ok
    })
}

/// The first `n` whitespace-separated fields of `line` and the rest.
fn fields(line: &str, n: usize) -> (Vec<&str>, &str) {
    let mut rest = line.trim_start();
    let mut out = Vec::new();
    for _ in 0..n {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        out.push(&rest[..end]);
        rest = rest[end..].trim_start();
    }
    (out, rest)
}

#[test]
fn cron_file_is_valid_and_its_commands_run() {
    let name = "dockgc";
    // run-parts naming: cron ignores /etc/cron.d files with dots and the like.
    assert!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    );
    let body = read("packaging/cron/dockgc");
    assert!(
        body.ends_with('\n'),
        "cron ignores a last line without newline"
    );
    let mut env = BTreeMap::new();
    let mut jobs = Vec::new();
    for line in body.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = t.split_once('=')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            env.insert(k.to_string(), v.to_string());
            continue;
        }
        let (f, command) = fields(t, 6);
        assert!(
            !command.is_empty(),
            "not `m h dom mon dow user command`: {line}"
        );
        for (v, lo, hi, what) in [
            (f[0], 0, 59, "minute"),
            (f[1], 0, 23, "hour"),
            (f[2], 1, 31, "day of month"),
            (f[3], 1, 12, "month"),
            (f[4], 0, 7, "day of week"),
        ] {
            assert!(cron_field_ok(v, lo, hi), "bad {what} field {v:?}: {line}");
        }
        assert_eq!(f[5], "root", "user field: {line}");
        assert!(!command.contains('%'), "% means newline to cron: {line}");
        jobs.push(command.to_string());
    }
    assert_eq!(env.get("SHELL").map(String::as_str), Some("/bin/sh"));
    let path = env.get("PATH").expect("PATH is set");
    for dir in ["/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
        assert!(path.split(':').any(|d| d == dir), "PATH lacks {dir}");
    }

    let mut seen = BTreeSet::new();
    for job in &jobs {
        let syntax = output(Command::new("/bin/sh").arg("-n").arg("-c").arg(job));
        assert!(syntax.status.success(), "{}", describe(job, &syntax));
        let parts: Vec<&str> = job.split(" || ").collect();
        let (guards, last) = parts.split_at(parts.len() - 1);
        assert_eq!(
            guards.first().copied(),
            Some("[ -d /run/systemd/system ]"),
            "systemd machines use the timers: {job}"
        );
        let (invocation, tail) = match last[0].split_once(['>', '|']) {
            Some((inv, _)) => (inv.trim(), last[0][inv.len()..].trim()),
            None => (last[0].trim(), ""),
        };
        let words: Vec<String> = invocation.split_whitespace().map(str::to_string).collect();
        assert!(!invocation.contains(['"', '\'', '$', '`']), "{job}");
        let command = words
            .iter()
            .skip(1)
            .find(|w| !w.starts_with('-'))
            .cloned()
            .unwrap_or_default();
        assert!(seen.insert(command.clone()), "one job per command: {job}");
        match command.as_str() {
            "df" | "verify" => {
                assert_eq!(guards.len(), 1, "{job}");
                assert_eq!(tail, ">/dev/null", "metrics only, no mail: {job}");
            }
            "prune" => {
                assert_eq!(
                    guards,
                    ["[ -d /run/systemd/system ]"],
                    "a live host is pruned through its daemon: {job}"
                );
                assert_eq!(tail, "| logger -t dockgc-prune", "{job}");
                assert!(words.iter().any(|w| w == "--yes"), "{job}");
            }
            other => panic!("unexpected command {other:?}: {job}"),
        }
        assert!(
            words.iter().any(|w| w == "--quiet"),
            "cron mails any output: {job}"
        );
        let file = format!("{TEXTFILE_DIR}/dockgc_{command}.prom");
        assert!(words.contains(&file), "{job}: writes {file}");
        for tool in ["pidof", "logger"] {
            if job.contains(tool) {
                assert!(
                    path.split(':').any(|d| Path::new(d).join(tool).is_file()),
                    "{tool} is not on the cron PATH"
                );
            }
        }

        let scratch = Scratch::new();
        let out = scratch.run_shipped(&words);
        assert!(out.status.success(), "{}", describe(job, &out));
        assert!(
            out.stderr.is_empty(),
            "a healthy run must not make cron send mail: {}",
            describe(job, &out)
        );
        assert!(
            scratch
                .last_run(
                    &scratch.textfile_dir(),
                    &format!("dockgc_{command}.prom"),
                    &command
                )
                .is_some(),
            "{job}: no textfile"
        );
    }
    assert_eq!(
        seen,
        BTreeSet::from(["df".to_string(), "verify".to_string(), "prune".to_string()])
    );
}

// ---------------------------------------------------------------------------
// config example

#[test]
fn config_example_is_valid_and_covers_every_prune_flag() {
    let example = repo().join("packaging/config.toml.example");
    let check = |path: &Path| {
        let out = output(
            Command::new(bin())
                .arg("--config")
                .arg(path)
                .args(["config", "check"])
                .env_remove("DOCKGC_ROOT"),
        );
        assert!(
            out.status.success(),
            "{}",
            describe("dockgc config check", &out)
        );
        text(&out.stdout)
    };
    check(&example);

    // Every `#key = value` line, uncommented, is valid together.
    let body = std::fs::read_to_string(&example).unwrap();
    let mut keys = Vec::new();
    let uncommented: String = body
        .lines()
        .map(|l| {
            let key = l
                .strip_prefix('#')
                .and_then(|r| r.split_once(" = "))
                .map(|(k, _)| k)
                .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '-'));
            match key {
                Some(k) => {
                    keys.push(k.to_string());
                    format!("{}\n", &l[1..])
                }
                None => format!("{l}\n"),
            }
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("config.toml");
    std::fs::write(&full, &uncommented).unwrap();
    let effective = check(&full);
    for top in ["root", "host"] {
        assert!(keys.iter().any(|k| k == top), "{top} is documented");
        assert!(
            effective
                .lines()
                .any(|l| l.starts_with(&format!("{top} = "))),
            "{top} does not show in the effective settings:\n{effective}"
        );
    }
    let prune_keys: Vec<&String> = keys
        .iter()
        .filter(|k| *k != "root" && *k != "host")
        .collect();
    for k in &prune_keys {
        assert!(
            effective.lines().any(|l| l.starts_with(&format!("{k} = "))),
            "{k} does not show in the effective settings:\n{effective}"
        );
    }
    // `free` conflicts with high/low, so it is shown in prose only.
    assert!(body.contains("free = \"20G\""), "free is documented");

    let help = output(Command::new(bin()).args(["prune", "--help"]));
    let help = text(&help.stdout);
    let documented: BTreeSet<String> = prune_keys
        .iter()
        .map(|k| k.to_string())
        .chain(["free".to_string()])
        .collect();
    let expected: BTreeSet<String> = [
        "all",
        "filter",
        "older-than",
        "age-by",
        "keep",
        "keep-last",
        "high",
        "low",
        "free",
        "min-age",
        "orphans",
        "grace",
        "trash",
        "containers",
        "container-age",
        "keep-container",
        "build-cache",
        "build-cache-until",
        "build-cache-keep",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        documented, expected,
        "the example documents every policy key"
    );
    for k in expected.iter().map(String::as_str).chain(["host"]) {
        assert!(help.contains(&format!("--{k}")), "prune has no --{k}");
    }
    assert!(
        !body
            .lines()
            .any(|l| l.trim_start_matches('#').starts_with("volumes =")),
        "volumes is never a config key"
    );
}

// ---------------------------------------------------------------------------
// Kubernetes

fn python_with_yaml() -> Option<PathBuf> {
    ["/usr/bin/python3"]
        .iter()
        .map(PathBuf::from)
        .chain(find_program("python3"))
        .find(|p| {
            p.is_file()
                && Command::new(p)
                    .args(["-c", "import yaml"])
                    .output()
                    .is_ok_and(|o| o.status.success())
        })
}

fn yaml_documents(path: &Path) -> Option<Vec<serde_json::Value>> {
    let Some(py) = python_with_yaml() else {
        unavailable("no python3 with PyYAML (apt-get install python3-yaml)");
        return None;
    };
    let out = output(
        Command::new(py)
            .arg("-c")
            .arg(
                "import json, sys, yaml\n\
         json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)",
            )
            .arg(path),
    );
    assert!(out.status.success(), "{}", describe("yaml", &out));
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn daemonset_mounts_the_data_root_read_only_and_writes_only_textfiles() {
    let path = repo().join("packaging/kubernetes/dockgc-daemonset.yaml");
    let Some(docs) = yaml_documents(&path) else {
        return;
    };
    assert_eq!(docs.len(), 1);
    let ds = &docs[0];
    assert_eq!(ds["apiVersion"], "apps/v1");
    assert_eq!(ds["kind"], "DaemonSet");
    let labels = &ds["spec"]["template"]["metadata"]["labels"];
    for (k, v) in ds["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "selector matches the pod labels");
    }
    let pod = &ds["spec"]["template"]["spec"];
    for k in ["hostPID", "hostIPC", "hostNetwork"] {
        assert_ne!(pod[k], true, "{k}");
    }
    assert_eq!(pod["automountServiceAccountToken"], false);

    let mut host_paths = BTreeMap::new();
    for v in pod["volumes"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let hp = v["hostPath"]["path"]
            .as_str()
            .unwrap_or_else(|| panic!("volume {name}: only hostPath volumes expected: {v}"));
        host_paths.insert(name.to_string(), hp.to_string());
    }
    let containers: Vec<&serde_json::Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|k| pod[k].as_array().into_iter().flatten())
        .collect();
    assert!(!containers.is_empty());
    let mut writable = BTreeSet::new();
    let mut names = Vec::new();
    for c in &containers {
        let name = c["name"].as_str().unwrap();
        names.push(name.to_string());
        let image = c["image"].as_str().unwrap();
        assert!(
            image.ends_with(&format!(":{}", env!("CARGO_PKG_VERSION"))),
            "{name}: image tag is the crate version: {image}"
        );
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
        assert_ne!(sc["privileged"], true, "{name}");
        assert!(
            sc["capabilities"]["drop"]
                .as_array()
                .is_some_and(|d| d.iter().any(|x| x == "ALL")),
            "{name}: drops all capabilities"
        );
        assert!(
            sc["capabilities"]["add"]
                .as_array()
                .is_none_or(|a| a.is_empty()),
            "{name}: adds none"
        );
        let mut mounts_root = false;
        for m in c["volumeMounts"].as_array().unwrap() {
            let vol = m["name"].as_str().unwrap();
            let hp = host_paths
                .get(vol)
                .unwrap_or_else(|| panic!("{name}: mount of unknown volume {vol}"));
            let ro = m["readOnly"] == true;
            if Path::new(hp).starts_with(DATA_ROOT) || Path::new(DATA_ROOT).starts_with(hp) {
                assert!(ro, "{name}: {hp} must be mounted readOnly");
                assert!(
                    m.get("recursiveReadOnly")
                        .is_none_or(|r| r == "IfPossible" || r == "Enabled"),
                    "{name}: {m}"
                );
                // Container configs name their logs by absolute host path.
                assert_eq!(m["mountPath"], DATA_ROOT, "{name}");
                mounts_root = true;
            }
            if !ro {
                writable.insert(hp.clone());
            }
        }
        assert!(mounts_root, "{name} reads the data root");
    }
    assert_eq!(
        writable,
        BTreeSet::from([TEXTFILE_DIR.to_string()]),
        "the textfile directory is the only writable mount"
    );
    assert_eq!(names, ["df", "verify"]);

    // Each container's loop, run here: writes its textfile again and again,
    // reports nothing on a healthy root, and ends promptly on SIGTERM.
    let scratch = Scratch::new();
    let bindir = scratch.path().join("bin");
    std::fs::create_dir(&bindir).unwrap();
    std::os::unix::fs::symlink(bin(), bindir.join("dockgc")).unwrap();
    for c in &containers {
        let name = c["name"].as_str().unwrap();
        assert_eq!(c["command"], serde_json::json!(["/bin/sh", "-c"]), "{name}");
        let script = c["args"][0].as_str().unwrap();
        for forbidden in ["prune", "apply", "trash"] {
            assert!(
                !script.contains(forbidden),
                "{name}: read-only commands only"
            );
        }
        let out_dir = scratch.path().join(format!("tf-{name}"));
        std::fs::create_dir(&out_dir).unwrap();
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(script);
        for e in c["env"].as_array().into_iter().flatten() {
            cmd.env(e["name"].as_str().unwrap(), e["value"].as_str().unwrap());
        }
        let err_path = scratch.path().join(format!("{name}.stderr"));
        let mut child = cmd
            .env("TEXTFILE_DIR", &out_dir)
            .env("INTERVAL", "1")
            .env("DOCKGC_ROOT", scratch.root())
            .env("DOCKGC_CONFIG", scratch.config())
            .env("PATH", format!("{}:{SYSTEM_PATH}", bindir.display()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap();
        let file = format!("dockgc_{name}.prom");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut stamps = BTreeSet::new();
        while stamps.len() < 2 {
            assert!(
                Instant::now() < deadline,
                "{name}: {file} not rewritten within 60 s; stderr: {}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
            if let Some(s) = scratch.last_run(&out_dir, &file, name) {
                stamps.insert(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{name}: the loop ignores SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{name}: {status}");
        let stderr = std::fs::read_to_string(&err_path).unwrap();
        assert!(stderr.is_empty(), "{name}: {stderr}");
    }
}

// ---------------------------------------------------------------------------
// Debian package

fn dpkg(root: Option<&Path>) -> Command {
    let mut c = Command::new("dpkg");
    c.env("PATH", SYSTEM_PATH);
    if let Some(r) = root {
        c.arg(format!("--root={}", r.display()))
            .args(["--force-script-chrootless", "--force-not-root"]);
    }
    c
}

fn must(cmd: &mut Command, what: &str) -> String {
    let out = output(cmd);
    assert!(out.status.success(), "{}", describe(what, &out));
    text(&out.stdout)
}

/// Removes the package installed on this machine by the test, even when an
/// assertion fails.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = dpkg(None).args(["--purge", "dockgc"]).output();
    }
}

#[test]
fn debian_package_builds_installs_runs_and_removes() {
    let version = env!("CARGO_PKG_VERSION");
    if find_program("dpkg-deb").is_none() {
        return unavailable("no dpkg-deb (not a Debian machine?)");
    }
    if find_program("dpkg-shlibdeps").is_none() {
        return unavailable("no dpkg-shlibdeps (apt-get install dpkg-dev)");
    }
    // The package reuses the binary this test run built (dev profile), from a
    // target directory of its own: cargo-deb deletes dockgc_*.deb in
    // <target>/debian, which may hold a release package.
    let target = tempfile::tempdir().unwrap();
    std::fs::create_dir(target.path().join("debug")).unwrap();
    std::fs::copy(bin(), target.path().join("debug/dockgc")).unwrap();
    let debdir = tempfile::tempdir().unwrap();
    let out = output(
        Command::new(repo().join("scripts/build-deb.sh"))
            .args(["--profile", "dev", "--no-build", "--output"])
            .arg(debdir.path())
            .env("CARGO_TARGET_DIR", target.path())
            .current_dir(repo()),
    );
    if !out.status.success() {
        let have_cargo_deb = Command::new("cargo")
            .args(["deb", "--version"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !have_cargo_deb && !in_ci() {
            return unavailable(&format!(
                "cargo-deb is missing and could not be installed:\n{}",
                text(&out.stderr)
            ));
        }
        panic!("{}", describe("scripts/build-deb.sh", &out));
    }
    let deb = PathBuf::from(text(&out.stdout).lines().last().unwrap_or_default().trim());
    assert!(
        deb.is_file() && deb.starts_with(debdir.path()),
        "the last line names the .deb: {}",
        describe("build-deb.sh", &out)
    );
    assert!(
        deb.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&format!("dockgc_{version}-1_")),
        "{}",
        deb.display()
    );

    // Control fields.
    let field = |name: &str| {
        must(
            Command::new("dpkg-deb")
                .args(["--field"])
                .arg(&deb)
                .arg(name),
            "dpkg-deb --field",
        )
        .trim()
        .to_string()
    };
    assert_eq!(field("Package"), "dockgc");
    assert_eq!(field("Version"), format!("{version}-1"));
    assert_eq!(field("Section"), "admin");
    assert!(
        field("Depends").contains("libc6"),
        "$auto found libc6: {}",
        field("Depends")
    );
    assert!(field("Maintainer").contains('@'));

    // Contents: every file, its mode and owner.
    let listing = must(
        Command::new("dpkg-deb").arg("--contents").arg(&deb),
        "dpkg-deb --contents",
    );
    let mut files = BTreeMap::new();
    for line in listing.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f[1], "0/0", "owned by root: {line}");
        if f[0].starts_with('-') {
            files.insert(f[5].trim_start_matches("./").to_string(), f[0].to_string());
        }
    }
    let man = tempfile::tempdir().unwrap();
    must(
        Command::new(bin()).arg("man").arg("--dir").arg(man.path()),
        "dockgc man",
    );
    let mut expected: BTreeSet<String> = [
        "usr/bin/dockgc",
        "etc/cron.d/dockgc",
        "etc/default/dockgc",
        "etc/dockgc/config.toml.example",
        "usr/share/bash-completion/completions/dockgc",
        "usr/share/zsh/vendor-completions/_dockgc",
        "usr/share/fish/vendor_completions.d/dockgc.fish",
        "usr/share/doc/dockgc/copyright",
        "usr/share/doc/dockgc/README.md",
        "usr/share/doc/dockgc/examples/dockgc-prune-stop-docker.conf",
        "usr/share/doc/dockgc/examples/dockgc-daemonset.yaml",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for s in SERVICES {
        expected.insert(format!("lib/systemd/system/{s}.service"));
        expected.insert(format!("lib/systemd/system/{s}.timer"));
    }
    for e in std::fs::read_dir(man.path()).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        expected.insert(format!("usr/share/man/man1/{name}.gz"));
    }
    assert_eq!(files.keys().cloned().collect::<BTreeSet<_>>(), expected);
    for (path, mode) in &files {
        let want = if path == "usr/bin/dockgc" {
            "-rwxr-xr-x"
        } else {
            "-rw-r--r--"
        };
        assert_eq!(mode, want, "{path}");
    }
    let ctl = tempfile::tempdir().unwrap();
    must(
        Command::new("dpkg-deb")
            .arg("--control")
            .arg(&deb)
            .arg(ctl.path()),
        "dpkg-deb --control",
    );
    let conffiles: BTreeSet<String> = std::fs::read_to_string(ctl.path().join("conffiles"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        conffiles,
        BTreeSet::from([
            "/etc/cron.d/dockgc".to_string(),
            "/etc/default/dockgc".to_string(),
            "/etc/dockgc/config.toml.example".to_string(),
        ])
    );
    for s in ["postinst", "prerm", "postrm"] {
        let p = ctl.path().join(s);
        must(Command::new("/bin/sh").arg("-n").arg(&p), s);
    }

    // Unpacked: the shipped files are the ones in packaging/, man pages are
    // roff, the completions are for dockgc.
    let x = tempfile::tempdir().unwrap();
    must(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(x.path()),
        "dpkg-deb -x",
    );
    for (src, dest) in [
        ("packaging/cron/dockgc", "etc/cron.d/dockgc"),
        ("packaging/default/dockgc", "etc/default/dockgc"),
        (
            "packaging/config.toml.example",
            "etc/dockgc/config.toml.example",
        ),
        (
            "packaging/systemd/stop-docker.conf",
            "usr/share/doc/dockgc/examples/dockgc-prune-stop-docker.conf",
        ),
    ] {
        assert_eq!(
            read(src),
            std::fs::read_to_string(x.path().join(dest)).unwrap(),
            "{dest}"
        );
    }
    for s in SERVICES {
        for ext in ["service", "timer"] {
            let name = format!("{s}.{ext}");
            assert_eq!(
                read(&format!("packaging/systemd/{name}")),
                std::fs::read_to_string(x.path().join("lib/systemd/system").join(&name)).unwrap()
            );
        }
    }
    let page = must(
        Command::new("gzip")
            .arg("-dc")
            .arg(x.path().join("usr/share/man/man1/dockgc-prune.1.gz")),
        "gzip -dc",
    );
    assert!(
        page.starts_with(".ie") || page.contains("\n.TH "),
        "roff: {}",
        &page[..page.len().min(200)]
    );
    for c in [
        "usr/share/bash-completion/completions/dockgc",
        "usr/share/zsh/vendor-completions/_dockgc",
        "usr/share/fish/vendor_completions.d/dockgc.fish",
    ] {
        assert!(
            std::fs::read_to_string(x.path().join(c))
                .unwrap()
                .contains("dockgc"),
            "{c}"
        );
    }

    // Installed into a scratch root (maintainer scripts run without chroot
    // and honour DPKG_ROOT), run, removed, purged.
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path();
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    std::fs::write(root.join("var/lib/dpkg/available"), "").unwrap();
    must(
        dpkg(Some(root)).args(["--force-depends", "-i"]).arg(&deb),
        "dpkg --root -i",
    );
    let status = must(dpkg(Some(root)).args(["-s", "dockgc"]), "dpkg -s");
    assert!(status.contains("Status: install ok installed"), "{status}");
    let v = must(
        Command::new(root.join("usr/bin/dockgc")).arg("--version"),
        "dockgc --version",
    );
    assert_eq!(v.trim(), format!("dockgc {version}"));
    let tf = root.join(TEXTFILE_DIR.trim_start_matches('/'));
    assert!(tf.is_dir(), "postinst creates the textfile directory");
    std::fs::write(tf.join("dockgc_df.prom"), "").unwrap();
    std::fs::write(tf.join("node.prom"), "").unwrap();
    must(dpkg(Some(root)).args(["-r", "dockgc"]), "dpkg --root -r");
    assert!(!root.join("usr/bin/dockgc").exists());
    assert!(
        root.join("etc/cron.d/dockgc").exists(),
        "remove keeps conffiles"
    );
    assert!(
        !tf.join("dockgc_df.prom").exists(),
        "its metrics go with it"
    );
    assert!(tf.join("node.prom").exists(), "other exporters' files stay");
    must(
        dpkg(Some(root)).args(["--purge", "dockgc"]),
        "dpkg --root --purge",
    );
    assert!(
        !root.join("etc/cron.d/dockgc").exists(),
        "purge removes conffiles"
    );

    // In CI: a real installation on the machine.
    let forced = std::env::var_os("DOCKGC_TEST_DPKG_INSTALL").is_some_and(|v| v == "1");
    if !(in_ci() || forced) {
        return;
    }
    if !is_root() {
        return unavailable("not root: cannot dpkg -i on this machine");
    }
    if dpkg(None)
        .args(["-s", "dockgc"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return unavailable("a dockgc package is already installed here; not replacing it");
    }
    let tf_existed = Path::new(TEXTFILE_DIR).exists();
    let guard = Installed;
    must(dpkg(None).arg("-i").arg(&deb), "dpkg -i");
    assert!(
        Path::new(TEXTFILE_DIR).is_dir(),
        "postinst creates {TEXTFILE_DIR}"
    );
    let v = must(
        Command::new("/usr/bin/dockgc").arg("--version"),
        "/usr/bin/dockgc --version",
    );
    assert_eq!(v.trim(), format!("dockgc {version}"));
    must(
        Command::new("/usr/bin/dockgc")
            .args(["config", "check"])
            .env_remove("DOCKGC_CONFIG"),
        "dockgc config check",
    );
    must(dpkg(None).args(["--purge", "dockgc"]), "dpkg --purge");
    assert!(!Path::new("/usr/bin/dockgc").exists());
    assert!(!Path::new("/etc/cron.d/dockgc").exists());
    drop(guard);
    if !tf_existed {
        // The package leaves node-exporter's directory; the test does not.
        let _ = std::fs::remove_dir(TEXTFILE_DIR);
        let _ = std::fs::remove_dir(Path::new(TEXTFILE_DIR).parent().unwrap());
    }
}
