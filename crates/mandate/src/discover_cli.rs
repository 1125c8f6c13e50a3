//! `mandate discover <kubernetes|aws|azure|gcp>`: sends a discovery tool's JSON output
//! (a file, or standard input) to `POST /v1/discovery/runs` and prints the
//! reconciliation — matched, shadows, ghosts, and with `--register` the drafts
//! registered — as a table or as JSON.

use std::io::{IsTerminal as _, Read as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use mandate_api as api;

use crate::Conn;
use crate::cmd_io::{Fail, OrFail, Res, client, exit, print_json, usage};

/// The largest document sent: the server's limit (mandate-govern's `MAX_INPUT_BYTES`).
const MAX_DOCUMENT: u64 = 64 << 20;

/// Where the document comes from.
#[derive(Clone, Copy, ValueEnum)]
pub enum DiscoverSource {
    /// `kubectl get pods -l app=ai-agent -A -o json` (or a PodList / ServiceAccountList)
    Kubernetes,
    /// `aws resourcegroupstaggingapi get-resources`
    Aws,
    /// `az resource list`
    Azure,
    /// `gcloud asset search-all-resources --format=json`
    Gcp,
}

impl DiscoverSource {
    fn as_str(self) -> &'static str {
        match self {
            Self::Kubernetes => "kubernetes",
            Self::Aws => "aws",
            Self::Azure => "azure",
            Self::Gcp => "gcp",
        }
    }
}

/// How the answer is printed.
#[derive(Clone, Copy, Default, ValueEnum)]
pub enum DiscoverFormat {
    /// Counts, then one line per item.
    #[default]
    Table,
    /// The API's answer, as sent.
    Json,
}

/// `mandate discover`.
#[derive(Args)]
pub struct DiscoverArgs {
    #[command(flatten)]
    conn: Conn,
    /// The tool whose output is given
    #[arg(value_enum)]
    source: DiscoverSource,
    /// The tool's JSON output: a file, or - for standard input (the default)
    #[arg(long, short = 'f')]
    file: Option<PathBuf>,
    /// `-`: read standard input (the same as `--file -`)
    #[arg(conflicts_with = "file")]
    input: Option<PathBuf>,
    /// A label (tag) selector: key=value, key!=value, key, !key, joined by `,`
    /// (default: app=ai-agent for kubernetes, every item for the clouds)
    #[arg(long)]
    selector: Option<String>,
    /// Register each unregistered shadow that names an owner as a suspended draft
    #[arg(long)]
    register: bool,
    /// table or json (--json is the same as --format json)
    #[arg(long, value_enum, default_value_t)]
    format: DiscoverFormat,
}

/// The document: the file, or standard input (refused when it is a terminal).
fn document(a: &DiscoverArgs) -> Res<Vec<u8>> {
    let path = a.file.as_ref().or(a.input.as_ref());
    let mut out = Vec::new();
    let too_big = || usage(format!("the document is over {MAX_DOCUMENT} bytes"));
    match path {
        Some(p) if p.as_os_str() != "-" => {
            let f = std::fs::File::open(p)
                .map_err(|e| Fail(1, format!("cannot read {}: {e}", p.display())))?;
            f.take(MAX_DOCUMENT + 1)
                .read_to_end(&mut out)
                .map_err(|e| Fail(1, format!("cannot read {}: {e}", p.display())))?;
        }
        _ => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                return Err(usage(
                    "give the tool's JSON output with --file FILE, or pipe it in (`kubectl get pods -l app=ai-agent -A -o json | mandate discover kubernetes`)",
                ));
            }
            stdin
                .lock()
                .take(MAX_DOCUMENT + 1)
                .read_to_end(&mut out)
                .map_err(|e| Fail(1, format!("cannot read standard input: {e}")))?;
        }
    }
    if u64::try_from(out.len()).unwrap_or(u64::MAX) > MAX_DOCUMENT {
        return Err(too_big());
    }
    Ok(out)
}

/// Runs `mandate discover`.
pub async fn run(a: DiscoverArgs) -> ExitCode {
    let r = async {
        let doc = document(&a)?;
        client(&a.conn)?
            .run_discovery(a.source.as_str(), a.selector.as_deref(), a.register, doc)
            .await
            .or_fail(&a.conn)
    }
    .await;
    let json = a.conn.json || matches!(a.format, DiscoverFormat::Json);
    exit(r.map(|run| {
        if json {
            print_json(&run);
        } else {
            print_table(&run);
        }
    }))
}

fn place(i: &api::DiscoveredItem) -> String {
    if i.scope.is_empty() {
        format!("{} {}", i.kind, i.name)
    } else {
        format!("{} {}/{}", i.kind, i.scope, i.name)
    }
}

fn print_table(r: &api::DiscoveryRun) {
    let c = &r.counts;
    let selector = if r.selector.is_empty() {
        "every item"
    } else {
        r.selector.as_str()
    };
    println!("{} discovery ({selector})", r.source);
    println!(
        "found {}  matched {}  shadows {}  ghosts {}  registered {}  not registered {}",
        c.found, c.matched, c.shadows, c.ghosts, c.registered, c.not_registered
    );
    for m in &r.matched {
        println!(
            "matched   {}  {:<8} {:<14} {}",
            m.agent,
            m.rule,
            m.status.as_str(),
            place(&m.item)
        );
    }
    for s in &r.shadows {
        println!(
            "shadow    {:<14} {}  owner {}",
            s.reason,
            place(&s.item),
            s.item.owner.as_deref().unwrap_or("-")
        );
    }
    for g in &r.ghosts {
        println!("ghost     {}  {}  {}", g.agent, g.name, g.status.as_str());
    }
    for x in &r.registered {
        println!(
            "registered {}  {}  (suspended draft)  {}",
            x.agent, x.name, x.uid
        );
    }
    for n in &r.not_registered {
        println!("not registered  {:<14} {}", n.reason, n.uid);
    }
}
