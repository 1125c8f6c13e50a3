//! The `mandate` binary: `mandate serve` runs the server; every other command is a client
//! of its API (address and token from flags or `MANDATE_ADDR`/`MANDATE_TOKEN`: an admin
//! token, or for `mandate request`/`complete` the agent's access token, or an approver's
//! user token for `approvals`).
//!
//! Exit codes: 0 success, 1 the server refused or failed, 2 bad usage or configuration.

/// mimalloc rather than glibc malloc: a decision makes many small allocations (Cedar's
/// request, entities and evaluator), and with a large snapshot resident glibc's
/// consolidation made them about 50% slower (BENCHMARKS.md, "Decision function").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod agent_key_cli;
mod anomalies_cli;
mod audit_cli;
mod backup_cli;
mod client;
mod cluster_cli;
mod cmd_io;
mod config;
mod devmode;
mod discover_cli;
mod export_cli;
mod gateway_cli;
mod incident_cli;
mod inventory_cli;
mod limits;
mod listen;
mod logwriter;
mod mandates_cli;
mod outbound;
mod policy_input;
mod replay_cli;
mod report_cli;
mod review_cli;
mod serve;
mod tls_in;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "mandate",
    version,
    about = "Identity, short-lived authority and a record for AI agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (zero configuration: creates ./mandate-data on first start;
    /// `--dev` for a throw-away development server)
    Serve(ServeArgs),
    /// Register and manage agents
    #[command(subcommand)]
    Agent(AgentCmd),
    /// Create, list and revoke admin tokens
    #[command(subcommand, name = "admin-token")]
    AdminToken(AdminTokenCmd),
    /// Signing keys
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Policy sets (Cedar and Rego): add, validate, activate, roll back, test, eval
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// The tamper-evident audit log: events, checkpoints, export, offline verify
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Mandates: task-scoped grants an agent asks for, for a user
    #[command(subcommand)]
    Mandate(mandates_cli::MandateCmd),
    /// Mandate requests waiting for a human: list, approve, deny
    #[command(subcommand)]
    Approvals(mandates_cli::ApprovalsCmd),
    /// Development helpers (only on a server started with `dev.user_tokens = true`)
    #[command(subcommand)]
    Dev(mandates_cli::DevCmd),
    /// The kill switch for an incident: contain an agent and keep its incident bundle
    #[command(subcommand)]
    Incident(incident_cli::IncidentCmd),
    /// Access tokens: revoke one by its id
    #[command(subcommand)]
    Token(incident_cli::TokenCmd),
    /// What the anomaly detector raised: list, acknowledge, dismiss; agents' baselines
    #[command(subcommand)]
    Anomalies(anomalies_cli::AnomaliesCmd),
    /// The enforcement gateways: upstream secrets
    #[command(subcommand)]
    Gateway(gateway_cli::GatewayCmd),
    /// Several nodes on one PostgreSQL: their status
    #[command(subcommand)]
    Cluster(cluster_cli::ClusterCmd),
    /// The SIEM export sinks (`[[export.sinks]]`): how far each has delivered
    #[command(subcommand)]
    Export(export_cli::ExportCmd),
    /// Reconcile a discovery tool's output (kubectl, AWS, Azure, GCP) with the registry:
    /// matched, shadow and ghost agents; --register drafts the unregistered
    Discover(discover_cli::DiscoverArgs),
    /// Every agent with its owner, credentials, last activity, risk and findings
    /// (dormant, stale credentials, dead, wildcard boundary, …), as a table, JSON or CSV
    Inventory(inventory_cli::InventoryArgs),
    /// Reports: compliance evidence for NIST AI RMF or the EU AI Act
    #[command(subcommand)]
    Report(report_cli::ReportCmd),
    /// Access review campaigns: grants beside their use, certify, narrow, decommission
    #[command(subcommand)]
    Review(review_cli::ReviewCmd),
    /// Copy this host's node (SQLite store and key files) to one backup file while it runs
    Backup(backup_cli::BackupArgs),
    /// Fill an empty data dir from a backup file, checked first
    Restore(backup_cli::RestoreArgs),
}

#[derive(Subcommand)]
pub enum PolicyCmd {
    /// Add a new policy version from one or more files, directories or OPA bundles
    /// (validated by the server; not active until activated). A version is the whole
    /// set: activating it replaces every policy of the active version, so give all the
    /// policies to enforce. A language the files give nothing of (Cedar, or Rego and
    /// data) is carried over from the active version, and a note says so
    Add {
        #[command(flatten)]
        conn: Conn,
        /// Cedar policy files (`*.cedar`), Rego modules (`*.rego`), data (`*.json`, the
        /// base document), directories (every `*.cedar` in them, sorted by name; every
        /// `*.rego` and `data.json` below them, as OPA loads a directory, without
        /// `*_test.rego`), or OPA bundles (`.tar.gz` as `opa build` writes it); all
        /// joined, in the order given, into one version
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// A schema fragment file (Cedar schema syntax), or a directory (every
        /// `*.cedarschema` in it, sorted); repeatable
        #[arg(long = "schema")]
        schemas: Vec<PathBuf>,
        /// Parse the Rego modules given here as Rego v0 (OPA 0.x syntax, OPA's
        /// `--v0-compatible`); a bundle's manifest (`rego_version`,
        /// `file_rego_versions`) overrides it for its own files
        #[arg(long)]
        rego_v0: bool,
        /// A note recorded with the version (what changed and why)
        #[arg(long, default_value = "")]
        note: String,
        /// Activate it at once
        #[arg(long)]
        activate: bool,
    },
    /// List policy versions
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Show one version's policies and schema fragments
    Show {
        #[command(flatten)]
        conn: Conn,
        /// The version number
        version: u64,
    },
    /// Validate policies offline: Cedar against the schema, Rego parsed and analysed
    /// (exit 1 with every error located: file, line, column)
    Validate {
        /// Cedar policy files, Rego modules, data, directories or OPA bundles, read as
        /// `policy add` reads them (`*_test.rego` included)
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// A schema fragment file or directory (every `*.cedarschema`); repeatable
        #[arg(long = "schema")]
        schemas: Vec<PathBuf>,
        /// Parse the Rego modules as Rego v0 (a bundle's manifest overrides it)
        #[arg(long)]
        rego_v0: bool,
    },
    /// Make a version the active one
    Activate {
        #[command(flatten)]
        conn: Conn,
        /// The version number
        version: u64,
    },
    /// Re-decide the recorded decisions of a window with a version (and boundary edits)
    /// and report what would change: allow→deny, deny→allow, by agent, action and
    /// policy, with example events. Changes nothing; run it before `activate`
    Replay(replay_cli::ReplayArgs),
    /// Re-activate the version that was active before the current one
    Rollback {
        #[command(flatten)]
        conn: Conn,
    },
    /// Print Mandate's base Cedar schema (namespace `Mandate`: `Agent`, `User`, `Group`,
    /// `Mandate`, the reserved context fields), offline: what your schema fragments extend
    /// and your policies are validated against
    Schema,
    /// Run policy tests offline; exit 1 when one fails. Rego: every `test_*` rule of
    /// the modules given (`*_test.rego` beside the policies), as `opa test` runs them.
    /// Cedar (with --policies): a test file of requests with expected decisions
    Test {
        /// Rego: modules, directories or bundles (policies and their `*_test.rego`).
        /// Cedar: the one test file (JSON: {"tests": [...]})
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The Cedar policies under test: a file or a directory (every `*.cedar`);
        /// repeatable, joined as `policy add` does. Given: the Cedar form
        #[arg(long)]
        policies: Vec<PathBuf>,
        /// A schema fragment file or directory (every `*.cedarschema`); repeatable
        #[arg(long = "schema")]
        schemas: Vec<PathBuf>,
        /// Rego: only the tests whose name (`data.<package>.<rule>`) contains this
        #[arg(long)]
        run: Option<String>,
        /// Parse the Rego modules as Rego v0 (a bundle's manifest overrides it)
        #[arg(long)]
        rego_v0: bool,
    },
    /// Evaluate Rego offline as the Data API would (`opa eval` for a data path): prints
    /// the Data API's body on one line, `{"result": …}` or `{}` when undefined (exit 0);
    /// OPA's error body `{"code", "message"}` on an evaluation error (exit 2); exit 1
    /// with located errors when the modules do not compile
    Eval {
        /// Rego modules, data, directories or OPA bundles (`*_test.rego` included, as
        /// `opa eval` loads them); Cedar files are not read
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The Data API path: `http/authz`, `http/authz/allow`; empty for all of `data`
        #[arg(long, default_value = "")]
        data_path: String,
        /// The input document (JSON, the input itself as `opa eval --input` reads it,
        /// not `{"input": …}`), or `-` for standard input; none: no input
        #[arg(long)]
        input: Option<PathBuf>,
        /// Parse the Rego modules as Rego v0 (a bundle's manifest overrides it)
        #[arg(long)]
        rego_v0: bool,
    },
}

#[derive(Subcommand)]
pub enum AuditCmd {
    /// List audit events
    Events {
        #[command(flatten)]
        conn: Conn,
        /// Only events about this agent (agt_…)
        #[arg(long)]
        agent: Option<String>,
        /// Only events of this kind (decision, agent.suspended, token.issued, …)
        #[arg(long)]
        kind: Option<String>,
        /// Only decisions with this outcome: allow, deny or approval_required
        #[arg(long)]
        decision: Option<String>,
        /// Only events at or after this time (RFC 3339)
        #[arg(long)]
        since: Option<String>,
        /// Only events before this time (RFC 3339)
        #[arg(long)]
        until: Option<String>,
        /// At most this many events per page (the server caps it)
        #[arg(long)]
        limit: Option<u32>,
        /// Continue after this seq (printed after a full page)
        #[arg(long)]
        cursor: Option<u64>,
    },
    /// The latest signed checkpoint and the public key that verifies it
    Checkpoint {
        #[command(flatten)]
        conn: Conn,
    },
    /// Export the whole log (JSON Lines, sealed by a fresh checkpoint); with
    /// --all-nodes, every node's log in the store, one file each, into --out DIR
    Export {
        #[command(flatten)]
        conn: Conn,
        /// Write here instead of standard output (with --all-nodes: a directory)
        #[arg(long)]
        out: Option<PathBuf>,
        /// Every node's log (a cluster keeps one per node): `<node>.jsonl` for each and
        /// `nodes.json` (the nodes and their audit keys) in the --out directory; another
        /// node's log ends at its newest checkpoint
        #[arg(long)]
        all_nodes: bool,
    },
    /// Verify an exported log or an incident bundle offline: any changed, dropped,
    /// inserted or reordered event, or a cut tail, fails; in a bundle, any changed byte.
    /// Given an --all-nodes export directory, verifies every node's log with its key
    Verify {
        /// An export (JSON Lines), an incident bundle (`mandate incident contain`), or
        /// the directory of `mandate audit export --all-nodes`
        file: PathBuf,
        /// The node's audit public key: base64 (from `mandate audit checkpoint`) or
        /// @FILE. For a directory: NODE=KEY, repeatable, pinning that node's key
        /// (unpinned nodes are checked with the key in its nodes.json)
        #[arg(long, visible_alias = "key")]
        public_key: Vec<String>,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Development mode (NOT for production): a fresh temporary data dir removed at exit
    /// (unless --data-dir/data_dir is given), the admin token and a demo agent's secret
    /// printed at every start, the examples' schemas and policies active, the
    /// development user issuer on, anomaly learning after 20 requests. Config, env and
    /// flags still override each of these defaults
    #[arg(long)]
    dev: bool,
    /// TOML config file (also MANDATE_CONFIG)
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free one (default 127.0.0.1:8080)
    #[arg(long)]
    listen: Option<String>,
    /// Data directory (default ./mandate-data)
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keep the store in PostgreSQL (postgres://user@host:port/db; also store.url,
    /// MANDATE_STORE_URL) instead of the SQLite file in the data dir
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// This node's id on a PostgreSQL store, which names its audit log (also
    /// cluster.node_id, MANDATE_CLUSTER_NODE_ID; default: the id in the data dir's
    /// `node-id` file, made on first start). Two running nodes never share an id
    #[arg(long, value_name = "ID")]
    node_id: Option<String>,
    /// Issuer URL put in tokens (default http://<listen address>)
    #[arg(long)]
    issuer: Option<String>,
    /// Read the admin bootstrap token from this file instead of generating one
    #[arg(long)]
    bootstrap_token_file: Option<PathBuf>,
}

/// Where the server is and who is asking; shared by every client command.
#[derive(Args, Clone)]
pub struct Conn {
    /// Server address
    #[arg(
        long,
        env = "MANDATE_ADDR",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub addr: String,
    /// Bearer token: an admin token (or, where a command says so, an agent's access token
    /// or a user token)
    #[arg(long, env = "MANDATE_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print the server's JSON instead of a summary
    #[arg(long, global = true)]
    pub json: bool,
    /// A PEM bundle of the CA certificates to trust for an `https://` server, instead
    /// of the system's roots
    #[arg(long, env = "MANDATE_CA_FILE", global = true)]
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Subcommand)]
pub enum AgentCmd {
    /// Register an agent
    Register {
        #[command(flatten)]
        conn: Conn,
        /// The agent's name: 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit
        #[arg(long)]
        name: String,
        /// The accountable human (email or user name)
        #[arg(long)]
        owner: String,
        /// What the agent is for, in words (shown in reviews and the audit log)
        #[arg(long)]
        purpose: Option<String>,
        /// A label, key=value (repeatable)
        #[arg(long = "label")]
        labels: Vec<String>,
        /// The boundary as JSON, or @FILE
        #[arg(long)]
        boundary: Option<String>,
    },
    /// List agents
    List {
        #[command(flatten)]
        conn: Conn,
        /// Only agents owned by this person
        #[arg(long)]
        owner: Option<String>,
        /// Only agents in this status: active, suspended or decommissioned
        #[arg(long)]
        status: Option<String>,
        /// key=value
        #[arg(long)]
        label: Option<String>,
        /// At most this many items per page (the server caps it)
        #[arg(long)]
        limit: Option<u32>,
        /// Continue from this cursor (printed after a full page)
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one agent
    Show {
        #[command(flatten)]
        conn: Conn,
        /// The id to show
        id: String,
    },
    /// Change an agent's name, owner, purpose, labels or boundary
    Update {
        #[command(flatten)]
        conn: Conn,
        /// The agent to change (agt_…)
        id: String,
        /// The new name
        #[arg(long)]
        name: Option<String>,
        /// The new accountable human (email or user name)
        #[arg(long)]
        owner: Option<String>,
        /// The new purpose
        #[arg(long)]
        purpose: Option<String>,
        /// Replace all labels with these, key=value (repeatable)
        #[arg(long = "label")]
        labels: Vec<String>,
        /// The boundary as JSON, or @FILE
        #[arg(long)]
        boundary: Option<String>,
    },
    /// Suspend an agent (reversible); its tokens stop working at once
    Suspend(StatusArgs),
    /// Resume a suspended agent
    Resume(StatusArgs),
    /// Decommission an agent for good; revokes its credentials
    Decommission(StatusArgs),
    /// Manage an agent's credentials
    #[command(subcommand)]
    Credential(CredentialCmd),
    /// An agent's own Ed25519 key for `private_key_jwt`, offline: generate one, sign a
    /// client assertion with it
    #[command(subcommand)]
    Key(agent_key_cli::AgentKeyCmd),
}

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// The agent (agt_…)
    pub id: String,
    /// Why, recorded in the audit log
    #[arg(long)]
    pub reason: Option<String>,
    /// (suspend only) also kill every token issued so far; a resume will not revive them
    #[arg(long)]
    pub revoke_tokens: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum CredentialType {
    ClientSecret,
    PublicKey,
    TlsClientAuth,
}

/// The subjectAltName a `tls_client_auth` credential expects (RFC 8705 §2.1.2): one of
/// the three.
#[derive(clap::Args, Clone, Default)]
pub struct SanArgs {
    /// For tls-client-auth: the dNSName the client certificate carries
    #[arg(long)]
    pub san_dns: Option<String>,
    /// For tls-client-auth: the URI (a SPIFFE ID, say) the client certificate carries
    #[arg(long)]
    pub san_uri: Option<String>,
    /// For tls-client-auth: the IP address the client certificate carries
    #[arg(long)]
    pub san_ip: Option<String>,
}

#[derive(Subcommand)]
pub enum CredentialCmd {
    /// Add a client secret (shown once), a public key (JWK) or a client-certificate name
    Add {
        #[command(flatten)]
        conn: Conn,
        /// The agent (agt_…)
        agent: String,
        /// client-secret (generated, shown once), public-key (with --jwk; its `x5c`, if
        /// any, is the client's self-signed TLS certificate) or tls-client-auth (with one
        /// --san-*: a client certificate of `tls.client_ca_file` carrying that name)
        #[arg(long = "type", value_enum)]
        kind: CredentialType,
        /// Public JWK as JSON, or @FILE (for public-key)
        #[arg(long)]
        jwk: Option<String>,
        #[command(flatten)]
        san: SanArgs,
        /// RFC 3339 time when the credential stops working
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// List an agent's credentials (never their secrets)
    List {
        #[command(flatten)]
        conn: Conn,
        /// Only those of this agent (agt_…)
        agent: String,
    },
    /// Replace a credential; the old one works for --overlap-secs more
    Rotate {
        #[command(flatten)]
        conn: Conn,
        /// The agent (agt_…)
        agent: String,
        /// The credential to replace (crd_…)
        credential: String,
        /// Seconds the old credential keeps working (default 3600, at most 2592000)
        #[arg(long)]
        overlap_secs: Option<u32>,
        /// The new public JWK as JSON, or @FILE (for public keys)
        #[arg(long)]
        jwk: Option<String>,
        #[command(flatten)]
        san: SanArgs,
    },
    /// Revoke a credential now
    Revoke {
        #[command(flatten)]
        conn: Conn,
        /// The agent (agt_…)
        agent: String,
        /// The credential to revoke (crd_…)
        credential: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Admin,
    Auditor,
    Approver,
    /// An enforcement point: may only ask for decisions (/v1/authorize, /access/v1/*)
    Service,
}

#[derive(Subcommand)]
pub enum AdminTokenCmd {
    /// Create a named admin token (shown once)
    Create {
        #[command(flatten)]
        conn: Conn,
        /// A name for the token (who or what holds it)
        #[arg(long)]
        name: String,
        /// What the token may do
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// List admin tokens
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Revoke an admin token
    Revoke {
        #[command(flatten)]
        conn: Conn,
        /// The id to revoke
        id: String,
    },
}

#[derive(Subcommand)]
pub enum KeysCmd {
    /// Start signing with a new key; the old one stays published until its tokens expire
    Rotate {
        #[command(flatten)]
        conn: Conn,
    },
    /// List published signing keys
    List {
        #[command(flatten)]
        conn: Conn,
    },
}

fn env_snapshot() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("MANDATE_"))
        .collect()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Serve(a) => {
            let env = env_snapshot();
            let flags = config::Flags {
                dev: a.dev,
                config: a.config,
                listen: a.listen,
                data_dir: a.data_dir,
                store: a.store,
                node_id: a.node_id,
                issuer: a.issuer,
                bootstrap_token_file: a.bootstrap_token_file,
            };
            let cfg = match config::load(&flags, &env) {
                Ok(c) => c,
                Err(errors) => {
                    eprintln!(
                        "error: invalid configuration ({} problem{}):",
                        errors.len(),
                        if errors.len() == 1 { "" } else { "s" }
                    );
                    for e in errors {
                        eprintln!("  - {e}");
                    }
                    return ExitCode::from(2);
                }
            };
            // Lines are written to stderr by the log writer's own thread (logwriter.rs).
            let (mut log, maker) = logwriter::LogWriter::start(std::io::stderr());
            tracing_subscriber::fmt()
                .with_writer(maker)
                .with_max_level(cfg.log_level)
                .with_ansi(false)
                .init();
            let served = runtime.block_on(serve::run(cfg, &env));
            // Every line logged while serving reaches stderr before our own last words.
            log.finish();
            match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Agent(c) => runtime.block_on(client::agent(c)),
        Command::AdminToken(c) => runtime.block_on(client::admin_token(c)),
        Command::Keys(c) => runtime.block_on(client::keys(c)),
        Command::Policy(c) => runtime.block_on(client::policy(c)),
        Command::Audit(c) => runtime.block_on(client::audit(c)),
        Command::Mandate(c) => runtime.block_on(mandates_cli::mandate(c)),
        Command::Approvals(c) => runtime.block_on(mandates_cli::approvals(c)),
        Command::Dev(c) => runtime.block_on(mandates_cli::dev(c)),
        Command::Incident(c) => runtime.block_on(incident_cli::incident(c)),
        Command::Token(c) => runtime.block_on(incident_cli::token(c)),
        Command::Anomalies(c) => runtime.block_on(anomalies_cli::anomalies(c)),
        Command::Gateway(c) => runtime.block_on(gateway_cli::gateway(c)),
        Command::Cluster(c) => runtime.block_on(cluster_cli::cluster(c)),
        Command::Export(c) => runtime.block_on(export_cli::export(c)),
        Command::Discover(a) => runtime.block_on(discover_cli::run(a)),
        Command::Inventory(a) => runtime.block_on(inventory_cli::run(a)),
        Command::Report(c) => runtime.block_on(report_cli::report(c)),
        Command::Review(c) => runtime.block_on(review_cli::review(c)),
        Command::Backup(a) => backup_cli::backup(&a),
        Command::Restore(a) => backup_cli::restore(&a),
    }
}

#[cfg(test)]
mod help_tests {
    use clap::CommandFactory;

    /// Every command and every argument of every command says what it is for: `--help`
    /// is the first documentation a user reads.
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(
                    arg.get_action(),
                    clap::ArgAction::Help
                        | clap::ArgAction::HelpShort
                        | clap::ArgAction::HelpLong
                        | clap::ArgAction::Version
                ) {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} <{id}>"));
                }
            }
            for sub in cmd.get_subcommands() {
                let here = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(here.clone());
                }
                walk(sub, &here, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "mandate", &mut missing);
        assert!(
            missing.is_empty(),
            "no help text for:\n{}",
            missing.join("\n")
        );
    }
}
