//! The README as a path: every `sh` block of README.md runs, top to bottom, as one bash
//! script (`set -euo pipefail`) in a fresh directory, as a new user would paste them.
//!
//! A block may carry a directive on the line just above its fence:
//! - `<!-- readme: server -->`: the block starts a server (`mandate serve …` or
//!   `cargo run -p mandate -- serve …`). The script starts it in the background with
//!   `MANDATE_LISTEN=127.0.0.1:0` (so tests can run side by side), waits for the
//!   `export MANDATE_ADDR=…` line it prints, and exports `MANDATE_ADDR` and
//!   `MANDATE_TOKEN` (the admin token it printed) for the blocks after it, as the
//!   README tells the reader to. A later server block starts a fresh server.
//! - `<!-- readme: background -->`: a long-running process the reader starts in another
//!   shell (a sample upstream); started in the background, and the script waits until it
//!   prints `listening`.
//! - `<!-- readme: skip — why -->`: not run; a reason is required. Only the test command
//!   itself (the suite would run itself) and `cargo install` (the test puts the built
//!   binary on the `PATH` instead) may be skipped; the test checks that list.
//!
//! What each block prints is checked against that block's own output ([`EXPECT`]): every
//! block that runs is listed there, with what it must print, in order (a block listed
//! with nothing must print nothing). A block cannot pass on what another one printed,
//! and `set -e` alone does not see a failure that only shows in the output (`curl -s`
//! printing a 403, `jq -r .x` printing `null`).
//!
//! `cargo run -p <package> [--bin <name>] --` stands for the binary the test suite built
//! (`target/debug/<name>`): running cargo from inside the suite would rebuild it with other
//! features under the tests' feet. Everything else runs exactly as written.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Blocks that may be skipped, by a word of their text: the suite itself, and installing
/// the binary the suite already built.
const MAY_SKIP: [&str; 2] = ["cargo nextest run", "cargo install --path crates/mandate"];

/// What each block that runs prints, in order: the block is the one whose text contains
/// the first string (exactly one must), the rest are looked for in its output one after
/// the other.
const EXPECT: &[(&str, &[&str])] = &[
    (
        r#""name": "billing-bot""#,
        &[
            "agent: agt_",
            r#""typ": "at+jwt""#,
            r#""active": true"#,
            r#""status": "suspended""#,
            r#""active": false"#,
            r#""error": "invalid_client""#,
            "client is suspended",
        ],
    ),
    (
        r#"mandate agent resume "$AGENT" >/dev/null"#,
        &[
            "and activated",
            r#""decision": "allow""#,
            "team-reads-contacts",
            r#""decision": "deny""#,
            r#"action: no grant of the agent's boundary names action \"crm:write\""#,
            "ok: ",
        ],
    ),
    ("mandate policy test examples/crm", &[" passed, 0 failed"]),
    (
        "--name triage-bot",
        &[
            "triage-bot",
            "previous crd_",
            "suspended",
            "active",
            "decommissioned",
            "role=auditor",
            "now signing with kid",
        ],
    ),
    (
        "mandate agent key generate",
        &[
            "public_key  active",
            r#""token_type": "Bearer""#,
            r#""error": "invalid_client""#,
            "client assertion already used",
        ],
    ),
    (
        "DEMO_ACCESS=$(",
        &[r#""decision": "allow""#, "team-reads-contacts"],
    ),
    (
        "--name refund-bot",
        &[
            "and activated",
            "user=alice",
            "active",
            r#""sub": "alice""#,
            r#""mandate": "mdt_"#,
            r#""decision": "allow""#,
            "billing-for-finance-users",
        ],
    ),
    (
        r#"mandate token revoke "$TOKEN_ID""#,
        &["revoked tok_", "revoked", "suspended", "contained agt_"],
    ),
    (
        "mandate audit verify incident-",
        &["ok: incident bundle inc_"],
    ),
    (
        "--name crm-scout",
        &[
            r#""decision": "deny""#,
            "new_action",
            "open",
            "acknowledged",
            "no anomalies",
            "crm:read×25, crm:write×1",
        ],
    ),
    ("v1/gateway/secrets/crm-key", &[]),
    (
        "echo demo-crm-key",
        &[
            "stored secret `crm-key`",
            r#""name":"Ada Lovelace""#,
            r#""status":403"#,
            "nothing was forwarded",
        ],
    ),
    (
        "MCP=$(",
        &[
            r#"["tools__lookup_contact","tools__add"]"#,
            r#"[{"type":"text","text":"5"}]"#,
            "-32003",
            "forbidden_by_policy",
        ],
    ),
    (
        "mkdir -p opa-demo",
        &[
            "authz.rego:6:39: `&&` is not Rego",
            "refused: fix it",
            "{}",
            "* v2",
            "OPA Policy API: put module authz.rego",
        ],
    ),
    (
        "request_source\": \"public_internet",
        &[
            r#"{"result":{"allow":true},"decision_id":""#,
            r#"{"result":{"allow":false},"decision_id":""#,
            "opa.decision         allow",
            "opa.decision         deny",
            "ok: ",
        ],
    ),
];

#[derive(Debug)]
enum Kind {
    Run,
    Server,
    Background,
}

#[derive(Debug)]
struct Block {
    line: usize,
    kind: Kind,
    text: String,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `sh` blocks of `readme`, in order, with their directives (skipped ones left out,
/// after checking they may be).
fn blocks(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let fence = lines[i].trim_end();
        if !fence.starts_with("```") {
            i += 1;
            continue;
        }
        let start = i;
        let end = (i + 1..lines.len())
            .find(|&j| lines[j].trim_end() == "```")
            .unwrap_or_else(|| panic!("README.md:{}: unclosed fence", start + 1));
        i = end + 1;
        if fence != "```sh" {
            assert!(
                !fence.starts_with("```bash") && !fence.starts_with("```shell"),
                "README.md:{}: shell blocks are ```sh, so this test runs them",
                start + 1
            );
            continue;
        }
        let text = lines[start + 1..end].join("\n");
        let directive = start
            .checked_sub(1)
            .map(|j| lines[j].trim())
            .and_then(|l| l.strip_prefix("<!-- readme:"))
            .and_then(|l| l.strip_suffix("-->"))
            .map(str::trim);
        let kind = match directive {
            None => Kind::Run,
            Some("server") => Kind::Server,
            Some("background") => Kind::Background,
            Some(d) if d.starts_with("skip") => {
                let why = d
                    .trim_start_matches("skip")
                    .trim_start_matches([' ', '—', '-', ':']);
                assert!(
                    !why.trim().is_empty(),
                    "README.md:{}: a skip needs a reason",
                    start + 1
                );
                assert!(
                    MAY_SKIP.iter().any(|w| text.contains(w)),
                    "README.md:{}: only {MAY_SKIP:?} may be skipped, not:\n{text}",
                    start + 1
                );
                continue;
            }
            Some(d) => panic!("README.md:{}: unknown directive {d:?}", start + 1),
        };
        out.push(Block {
            line: start + 1,
            kind,
            text,
        });
    }
    out
}

/// `cargo run [-q] -p PKG [--bin NAME] --` → the built binary, as the module explains.
fn built(text: &str, bin_dir: &Path) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut line = line.to_owned();
        while let Some(at) = line.find("cargo run") {
            let rest = &line[at..];
            let end = rest
                .find(" -- ")
                .map(|e| e + 4)
                .or_else(|| rest.ends_with(" --").then_some(rest.len()))
                .unwrap_or_else(|| panic!("`cargo run` without ` -- ` in: {line}"));
            let words: Vec<&str> = rest[..end].split_whitespace().collect();
            let after = |flag: &str| {
                words
                    .iter()
                    .position(|w| *w == flag)
                    .and_then(|p| words.get(p + 1))
                    .copied()
            };
            let name = after("--bin")
                .or_else(|| after("-p"))
                .unwrap_or_else(|| panic!("`cargo run` without -p in: {line}"));
            let exe = bin_dir.join(name);
            assert!(
                exe.exists(),
                "{} is not built (the README runs it as `{}`; `cargo nextest run --workspace` \
                 builds every binary that has integration tests)",
                exe.display(),
                &rest[..end].trim()
            );
            let tail = rest[end..].to_owned();
            line = format!("{}{} {tail}", &line[..at], exe.display());
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The script's own helpers: start a server or a background process and wait for it.
const PRELUDE: &str = r#"
# A failure inside `$(a; b)` fails the substitution too, not only its last command.
shopt -s inherit_errexit
readme_pids=()
readme_stop() { for p in "${readme_pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap readme_stop EXIT
readme_wait() { # FILE PATTERN PID: wait until FILE holds PATTERN, or fail
  local i
  for i in $(seq 1 600); do
    if grep -q -- "$2" "$1"; then return 0; fi
    if ! kill -0 "$3" 2>/dev/null; then echo "exited early:"; cat "$1"; return 1; fi
    sleep 0.1
  done
  echo "timed out waiting for '$2' in:"; cat "$1"; return 1
}
readme_server() {
  local out="readme-out-$((${#readme_pids[@]} + 1)).txt" pid
  MANDATE_LISTEN=127.0.0.1:0 bash -c "exec $1" >"$out" 2>&1 &
  pid=$!
  readme_pids+=("$pid")
  readme_wait "$out" 'MANDATE_ADDR=http' "$pid"
  export MANDATE_ADDR MANDATE_TOKEN
  MANDATE_ADDR=$(grep -o 'MANDATE_ADDR=http[^ ]*' "$out" | head -1 | cut -d= -f2-)
  MANDATE_TOKEN=$(grep -o 'mat_[A-Za-z0-9_-]*' "$out" | head -1)
  # `serve --dev` prints its demo agent's credentials on the export line too.
  local kv
  for kv in $(grep -o 'DEMO_[A-Z]*=[^ ]*' "$out" | head -2); do export "${kv?}"; done
  echo "(readme: server at $MANDATE_ADDR)"
}
readme_background() {
  local out="readme-out-$((${#readme_pids[@]} + 1)).txt" pid
  bash -c "$1" >"$out" 2>&1 &
  pid=$!
  readme_pids+=("$pid")
  readme_wait "$out" 'listening' "$pid"
}
"#;

fn script(blocks: &[Block], bin_dir: &Path) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut out = String::from(PRELUDE);
    for b in blocks {
        out.push_str(&format!("\nprintf '\\n### README.md:%s\\n' {}\n", b.line));
        let text = built(&b.text, bin_dir);
        match b.kind {
            Kind::Run => out.push_str(&text),
            Kind::Server => {
                let cmd = text.trim();
                assert!(
                    !cmd.contains('\n') && cmd.contains(" serve"),
                    "README.md:{}: a server block is one `mandate serve` line",
                    b.line
                );
                out.push_str(&format!("readme_server {}\n", quote(cmd)));
            }
            Kind::Background => {
                out.push_str(&format!("readme_background {}\n", quote(text.trim())));
            }
        }
    }
    out
}

#[test]
fn every_shell_block_of_the_readme_runs_in_order() {
    let root = workspace();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let blocks = blocks(&readme);
    assert!(
        matches!(blocks.first().map(|b| &b.kind), Some(Kind::Server)),
        "the README's first block starts the server"
    );
    let bin_dir = Path::new(crate::harness::BIN).parent().unwrap().to_owned();
    let script = script(&blocks, &bin_dir);
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(root.join("examples"), dir.path().join("examples")).unwrap();
    std::fs::write(dir.path().join("readme.sh"), &script).unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "readme.sh"])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("HOME", dir.path());
    // The reader's shell has none of the test runner's settings.
    for (k, _) in std::env::vars() {
        if k.starts_with("MANDATE_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let logs = || {
        let mut all = String::new();
        for e in std::fs::read_dir(dir.path()).unwrap().map_while(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("readme-out-") {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                all.push_str(&format!("--- {name} ---\n{text}\n"));
            }
        }
        all
    };
    assert!(
        out.status.success(),
        "the README failed (the last `### README.md:N` is the block):\n{stdout}\n--- stderr ---\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        logs()
    );
    // What the README says each block prints, in that block's own output.
    let problems = check_outputs(&blocks, &stdout);
    assert!(
        problems.is_empty(),
        "{}\n\nin:\n{stdout}",
        problems.join("\n")
    );
}

/// The output of each block, by its README line, cut at the `### README.md:N` lines the
/// script prints before each block.
fn outputs(stdout: &str) -> std::collections::BTreeMap<usize, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut current: Option<(usize, String)> = None;
    for line in stdout.lines() {
        if let Some(n) = line
            .strip_prefix("### README.md:")
            .and_then(|n| n.parse().ok())
        {
            out.extend(current.take());
            current = Some((n, String::new()));
        } else if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    out.extend(current);
    out
}

/// Holds every block that runs to its [`EXPECT`] entry; the list of what is wrong.
fn check_outputs(blocks: &[Block], stdout: &str) -> Vec<String> {
    let outputs = outputs(stdout);
    let mut problems = Vec::new();
    let mut listed = std::collections::BTreeSet::new();
    for (key, wants) in EXPECT {
        let found: Vec<&Block> = blocks
            .iter()
            .filter(|b| matches!(b.kind, Kind::Run) && b.text.contains(key))
            .collect();
        let [block] = found[..] else {
            problems.push(format!("{} run blocks contain {key:?}", found.len()));
            continue;
        };
        listed.insert(block.line);
        let text = outputs.get(&block.line).map_or("", String::as_str);
        if wants.is_empty() && !text.trim().is_empty() {
            problems.push(format!(
                "README.md:{} should print nothing, printed:\n{text}",
                block.line
            ));
        }
        let mut rest = text;
        for want in *wants {
            match rest.find(want) {
                Some(at) => rest = &rest[at + want.len()..],
                None => {
                    problems.push(format!(
                        "README.md:{} did not print {want:?} (after the ones before it):\n{text}",
                        block.line
                    ));
                    break;
                }
            }
        }
    }
    for b in blocks {
        if matches!(b.kind, Kind::Run) && !listed.contains(&b.line) {
            problems.push(format!(
                "README.md:{}: a block that runs needs an EXPECT entry:\n{}",
                b.line, b.text
            ));
        }
    }
    problems
}

#[test]
fn a_block_is_held_to_its_own_output() {
    let block = |line, text: &str| Block {
        line,
        kind: Kind::Run,
        text: text.to_owned(),
    };
    let blocks = [
        block(10, "DEMO_ACCESS=$(curl …)"),
        block(20, "v1/gateway/secrets/crm-key"),
    ];
    let only = |problems: Vec<String>| {
        problems
            .into_iter()
            .filter(|p| !p.contains("run blocks contain"))
            .collect::<Vec<_>>()
    };
    let allow = "{\n  \"decision\": \"allow\",\n  \"policy_ids\": [\"team-reads-contacts\"]\n}";
    let good = format!("\n### README.md:10\n{allow}\n\n### README.md:20\n");
    assert_eq!(only(check_outputs(&blocks, &good)), Vec::<String>::new());
    // The allow printed by another block does not count for this one.
    let elsewhere =
        format!("\n### README.md:10\n{{\"decision\": \"deny\"}}\n\n### README.md:20\n{allow}\n");
    let problems = only(check_outputs(&blocks, &elsewhere));
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with("README.md:10 did not print"));
    assert!(problems[1].starts_with("README.md:20 should print nothing"));
    // Order counts, and every block that runs must be listed.
    let reversed = "\n### README.md:10\nteam-reads-contacts \"decision\": \"allow\"\n";
    assert_eq!(only(check_outputs(&blocks, reversed)).len(), 1);
    let unlisted = [block(30, "echo hi")];
    assert!(
        check_outputs(&unlisted, "\n### README.md:30\nhi\n")
            .iter()
            .any(|p| p.starts_with("README.md:30: a block that runs needs"))
    );
}

#[test]
fn cargo_run_stands_for_the_built_binary() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["mandate", "crm-api"] {
        std::fs::write(dir.path().join(name), "").unwrap();
    }
    let d = dir.path().display();
    assert_eq!(
        built("cargo run -p mandate -- serve --dev", dir.path()),
        format!("{d}/mandate serve --dev\n")
    );
    assert_eq!(
        built(
            "x=1 cargo run -q -p mandate-examples --bin crm-api -- --port 9",
            dir.path()
        ),
        format!("x=1 {d}/crm-api --port 9\n")
    );
}
