//! The CLI's client side: each command is one call to the admin API, printed as a short
//! summary or, with `--json`, as the server's JSON.

use std::collections::BTreeMap;
use std::process::ExitCode;

use mandate_api as api;
use mandate_client::{AgentQuery, AuditQuery, PageQuery};
use serde_json::json;

use crate::cmd_io::{
    Fail, OrFail, Res, client, exit, finish, more, or_dash, say_if_none, text_arg, usage,
};
use crate::{AdminTokenCmd, AgentCmd, CredentialCmd, CredentialType, KeysCmd, RoleArg, StatusArgs};
use crate::{AuditCmd, PolicyCmd, policy_input};

/// JSON given inline or as @FILE, read as `T`.
fn json_arg<T: serde::de::DeserializeOwned>(v: &str) -> Res<T> {
    serde_json::from_str(&text_arg(v)?).map_err(|e| usage(format!("not valid JSON: {e}")))
}

fn labels(list: &[String]) -> Res<Option<BTreeMap<String, String>>> {
    if list.is_empty() {
        return Ok(None);
    }
    let mut m = BTreeMap::new();
    for l in list {
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| usage(format!("label `{l}` is not key=value")))?;
        m.insert(k.to_owned(), v.to_owned());
    }
    Ok(Some(m))
}

fn agent_line(a: &api::Agent) -> String {
    format!(
        "{}  {:<24} {:<15} owner={}",
        a.id,
        a.name,
        a.status.as_str(),
        a.owner
    )
}

fn print_agent(a: &api::Agent) {
    println!("{}", agent_line(a));
    if !a.purpose.is_empty() {
        println!("  purpose: {}", a.purpose);
    }
    if !a.labels.is_empty() {
        let ls: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("  labels: {}", ls.join(", "));
    }
    if let Some(r) = &a.status_reason {
        println!("  reason: {r}");
    }
}

/// A `tls_client_auth` credential's subjectAltName as `dns:…`, `uri:…` or `ip:…`.
fn cert_name(c: &api::Credential) -> Option<String> {
    [
        ("dns", &c.tls_client_auth_san_dns),
        ("uri", &c.tls_client_auth_san_uri),
        ("ip", &c.tls_client_auth_san_ip),
    ]
    .into_iter()
    .find_map(|(k, v)| v.as_ref().map(|v| format!("{k}:{v}")))
}

fn print_credential(
    c: &api::Credential,
    secret: Option<&str>,
    previous: Option<&api::PreviousCredential>,
) {
    println!(
        "{}  {}  {}  agent={}",
        c.id,
        c.kind.as_str(),
        c.state,
        c.agent_id
    );
    if let Some(name) = cert_name(c) {
        println!("  client certificate must carry: {name}");
    }
    if let Some(p) = previous {
        println!("  previous {} works until {}", p.id, p.expires_at);
    }
    if let Some(secret) = secret {
        println!("  client_id:     {}", c.agent_id);
        println!("  client_secret: {secret}");
        println!("  (the secret is shown only this once)");
    }
}

/// The body of suspend, resume and decommission: only what was given.
fn status_change(a: &StatusArgs) -> api::StatusChange {
    api::StatusChange {
        reason: a.reason.clone(),
        revoke_tokens: a.revoke_tokens.then_some(true),
    }
}

/// Which status change a lifecycle command asks for.
#[derive(Clone, Copy)]
enum Lifecycle {
    Suspend,
    Resume,
    Decommission,
}

pub async fn agent(cmd: AgentCmd) -> ExitCode {
    match cmd {
        AgentCmd::Register {
            conn,
            name,
            owner,
            purpose,
            labels: ls,
            boundary,
        } => {
            let r = async {
                let req = api::RegisterAgent {
                    name,
                    owner,
                    purpose,
                    labels: labels(&ls)?,
                    boundary: boundary.as_deref().map(json_arg).transpose()?,
                };
                client(&conn)?.register_agent(&req).await.or_fail(&conn)
            }
            .await;
            finish(&conn, r, print_agent)
        }
        AgentCmd::List {
            conn,
            owner,
            status,
            label,
            limit,
            cursor,
        } => {
            let q = AgentQuery {
                owner,
                status,
                label,
                page: PageQuery { limit, cursor },
            };
            let r = async { client(&conn)?.list_agents(&q).await.or_fail(&conn) }.await;
            finish(&conn, r, |v| {
                say_if_none(&v.items, "no agents");
                for a in &v.items {
                    println!("{}", agent_line(a));
                }
                more(v.next_cursor.as_deref());
            })
        }
        AgentCmd::Show { conn, id } => {
            let r = async { client(&conn)?.get_agent(&id).await.or_fail(&conn) }.await;
            finish(&conn, r, print_agent)
        }
        AgentCmd::Update {
            conn,
            id,
            name,
            owner,
            purpose,
            labels: ls,
            boundary,
        } => {
            let r = async {
                let req = api::UpdateAgent {
                    name,
                    owner,
                    purpose,
                    labels: labels(&ls)?,
                    boundary: boundary.as_deref().map(json_arg).transpose()?,
                };
                client(&conn)?.update_agent(&id, &req).await.or_fail(&conn)
            }
            .await;
            finish(&conn, r, print_agent)
        }
        AgentCmd::Suspend(a) => lifecycle(&a, Lifecycle::Suspend).await,
        AgentCmd::Resume(a) => lifecycle(&a, Lifecycle::Resume).await,
        AgentCmd::Decommission(a) => lifecycle(&a, Lifecycle::Decommission).await,
        AgentCmd::Credential(c) => credential(c).await,
        AgentCmd::Key(c) => crate::agent_key_cli::agent_key(c),
    }
}

async fn lifecycle(a: &StatusArgs, to: Lifecycle) -> ExitCode {
    let conn = &a.conn;
    let r = async {
        let c = client(conn)?;
        let req = status_change(a);
        match to {
            Lifecycle::Suspend => c.suspend_agent(&a.id, &req).await,
            Lifecycle::Resume => c.resume_agent(&a.id, &req).await,
            Lifecycle::Decommission => c.decommission_agent(&a.id, &req).await,
        }
        .or_fail(conn)
    }
    .await;
    finish(conn, r, print_agent)
}

async fn credential(cmd: CredentialCmd) -> ExitCode {
    match cmd {
        CredentialCmd::Add {
            conn,
            agent,
            kind,
            jwk,
            san,
            expires_at,
        } => {
            let r = async {
                let req = api::NewCredential {
                    kind: match kind {
                        CredentialType::ClientSecret => api::CredentialKind::ClientSecret,
                        CredentialType::PublicKey => api::CredentialKind::PublicKey,
                        CredentialType::TlsClientAuth => api::CredentialKind::TlsClientAuth,
                    },
                    jwk: jwk.as_deref().map(json_arg).transpose()?,
                    tls_client_auth_san_dns: san.san_dns,
                    tls_client_auth_san_uri: san.san_uri,
                    tls_client_auth_san_ip: san.san_ip,
                    expires_at,
                };
                client(&conn)?
                    .add_credential(&agent, &req)
                    .await
                    .or_fail(&conn)
            }
            .await;
            finish(&conn, r, |v| {
                print_credential(&v.credential, v.client_secret.as_deref(), None)
            })
        }
        CredentialCmd::List { conn, agent } => {
            let r = async { client(&conn)?.list_credentials(&agent).await.or_fail(&conn) }.await;
            finish(&conn, r, |v| {
                say_if_none(&v.items, "no credentials");
                for c in &v.items {
                    let until = c
                        .expires_at
                        .as_ref()
                        .map(|e| format!("  until {e}"))
                        .unwrap_or_default();
                    let name = cert_name(c).map(|n| format!("  {n}")).unwrap_or_default();
                    println!(
                        "{}  {:<15} {:<9}{until}{name}",
                        c.id,
                        c.kind.as_str(),
                        c.state
                    );
                }
            })
        }
        CredentialCmd::Rotate {
            conn,
            agent,
            credential,
            overlap_secs,
            jwk,
            san,
        } => {
            let r = async {
                let req = api::RotateCredential {
                    overlap_secs,
                    jwk: jwk.as_deref().map(json_arg).transpose()?,
                    tls_client_auth_san_dns: san.san_dns,
                    tls_client_auth_san_uri: san.san_uri,
                    tls_client_auth_san_ip: san.san_ip,
                };
                client(&conn)?
                    .rotate_credential(&agent, &credential, &req)
                    .await
                    .or_fail(&conn)
            }
            .await;
            finish(&conn, r, |v| {
                print_credential(&v.credential, v.client_secret.as_deref(), Some(&v.previous))
            })
        }
        CredentialCmd::Revoke {
            conn,
            agent,
            credential,
        } => {
            let r = async {
                client(&conn)?
                    .revoke_credential(&agent, &credential)
                    .await
                    .or_fail(&conn)
            }
            .await;
            // The CLI's own summary (the server answers 204).
            finish(&conn, r.map(|()| json!({"revoked": credential})), |_| {
                println!("revoked {credential}")
            })
        }
    }
}

pub async fn admin_token(cmd: AdminTokenCmd) -> ExitCode {
    match cmd {
        AdminTokenCmd::Create { conn, name, role } => {
            let role = match role {
                RoleArg::Admin => api::Role::Admin,
                RoleArg::Auditor => api::Role::Auditor,
                RoleArg::Approver => api::Role::Approver,
                RoleArg::Service => api::Role::Service,
            };
            let req = api::NewAdminToken { name, role };
            let r = async { client(&conn)?.create_admin_token(&req).await.or_fail(&conn) }.await;
            finish(&conn, r, |v| {
                let t = &v.admin_token;
                println!("{}  {}  role={}", t.id, t.name, t.role.as_str());
                println!("  token: {}", v.token);
                println!("  (the token is shown only this once)");
            })
        }
        AdminTokenCmd::List { conn } => {
            let r = async { client(&conn)?.list_admin_tokens().await.or_fail(&conn) }.await;
            finish(&conn, r, |v| {
                say_if_none(&v.items, "no admin tokens");
                for t in &v.items {
                    let state = if t.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!("{}  {:<24} {:<9} {state}", t.id, t.name, t.role.as_str());
                }
            })
        }
        AdminTokenCmd::Revoke { conn, id } => {
            let r = async { client(&conn)?.revoke_admin_token(&id).await.or_fail(&conn) }.await;
            // The CLI's own summary (the server answers 204).
            finish(&conn, r.map(|()| json!({"revoked": id})), |_| {
                println!("revoked {id}")
            })
        }
    }
}

pub async fn keys(cmd: KeysCmd) -> ExitCode {
    match cmd {
        KeysCmd::Rotate { conn } => {
            let r = async { client(&conn)?.rotate_keys().await.or_fail(&conn) }.await;
            finish(&conn, r, |v| {
                println!("now signing with kid {}", v.kid);
                println!(
                    "kid {} stays published until {}",
                    v.retired_kid, v.retired_published_until
                );
            })
        }
        KeysCmd::List { conn } => {
            let r = async { client(&conn)?.list_keys().await.or_fail(&conn) }.await;
            finish(&conn, r, |v| {
                say_if_none(&v.items, "no signing keys");
                for k in &v.items {
                    let what = if k.current {
                        "current".to_owned()
                    } else {
                        format!("published until {}", or_dash(k.published_until.as_deref()))
                    };
                    println!("{}  {what}", k.kid);
                }
            })
        }
    }
}

fn read(path: &std::path::Path) -> Res<String> {
    std::fs::read_to_string(path).map_err(|e| usage(format!("reading {}: {e}", path.display())))
}

fn read_all(paths: &[std::path::PathBuf]) -> Res<Vec<String>> {
    paths.iter().map(|p| read(p)).collect()
}

/// The files `args` name: a file as it is, a directory as every file in it (not below
/// it) whose name ends in `.{ext}`, sorted by name. A directory with none is an error:
/// an empty policy set is never sent by accident.
fn expand(args: &[std::path::PathBuf], ext: &str) -> Res<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for a in args {
        if !a.is_dir() {
            out.push(a.clone());
            continue;
        }
        let entries = std::fs::read_dir(a)
            .map_err(|e| usage(format!("reading directory {}: {e}", a.display())))?;
        let mut found: Vec<std::path::PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == ext))
            .collect();
        if found.is_empty() {
            return Err(usage(format!("no `*.{ext}` file in {}", a.display())));
        }
        found.sort();
        out.append(&mut found);
    }
    Ok(out)
}

/// Policy files joined into one text, each after a `// file: …` line, and where each
/// one's lines are in it (errors are located in the joined text).
struct Joined {
    text: String,
    /// (file, first line, last line), 1-based, in the joined text.
    spans: Vec<(std::path::PathBuf, usize, usize)>,
}

impl Joined {
    fn read(args: &[std::path::PathBuf]) -> Res<Joined> {
        Self::join(expand(args, "cedar")?)
    }

    /// Joins files (not directories).
    fn join(files: Vec<std::path::PathBuf>) -> Res<Joined> {
        let mut j = Joined {
            text: String::new(),
            spans: Vec::new(),
        };
        // One file is sent as it is, so line numbers are the file's own.
        if let [only] = files.as_slice() {
            j.text = read(only)?;
            return Ok(j);
        }
        let mut line = 1;
        for f in files {
            let body = read(&f)?;
            // INVARIANT (a name is only a comment): the name is escaped, so a line break
            // in it cannot end the comment and make the rest of the name policy text.
            let header = format!("// file: {}\n", f.display().to_string().escape_debug());
            let lines = body.lines().count().max(1);
            j.text.push_str(&header);
            j.text.push_str(&body);
            if !body.ends_with('\n') {
                j.text.push('\n');
            }
            j.spans.push((f, line + 1, line + lines));
            line += 1 + lines;
        }
        Ok(j)
    }

    /// Where each file's lines are, for an error message (nothing for one file).
    fn map(&self) -> String {
        self.spans
            .iter()
            .map(|(f, a, b)| format!("\n  (policy lines {a}-{b} are {})", f.display()))
            .collect()
    }
}

fn read_schemas(args: &[std::path::PathBuf]) -> Res<Vec<String>> {
    read_all(&expand(args, "cedarschema")?)
}

/// Compiles locally, printing every located error; `Err` exits 1.
fn compile_local(
    policies: &[std::path::PathBuf],
    schemas: &[std::path::PathBuf],
) -> Res<mandate_policy::CompiledPolicies> {
    let fragments = read_schemas(schemas)?;
    let joined = Joined::read(policies)?;
    mandate_policy::compile(&fragments, &joined.text).map_err(|errs| {
        let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
        Fail(
            1,
            format!(
                "{} problem(s):\n  {}{}",
                errs.len(),
                lines.join("\n  "),
                joined.map()
            ),
        )
    })
}

pub async fn policy(cmd: PolicyCmd) -> ExitCode {
    match cmd {
        PolicyCmd::Add {
            conn,
            files,
            schemas,
            rego_v0,
            note,
            activate,
        } => {
            let mut rego_modules = 0;
            let r = async {
                let inputs = policy_input::read_inputs(
                    &files,
                    policy_input::ReadOptions {
                        rego_v0,
                        tests: false,
                    },
                )?;
                note_inputs(&inputs);
                if inputs.cedar.is_empty() && !inputs.has_rego() {
                    return Err(usage(
                        "nothing to add: no Cedar policy, Rego module or data among the files",
                    ));
                }
                let joined = Joined::join(inputs.cedar.clone())?;
                let mut fragments = read_all(&inputs.schemas)?;
                fragments.extend(read_schemas(&schemas)?);
                let gives_cedar = !inputs.cedar.is_empty() || !fragments.is_empty();
                let gives_rego = inputs.has_rego();
                let rego = inputs.rego;
                rego_modules = rego.modules.len();
                let mut req = api::NewPolicies {
                    schema_fragments: fragments,
                    policies: joined.text.clone(),
                    note: Some(note),
                    rego_modules: rego
                        .modules
                        .into_iter()
                        .map(|m| api::RegoModuleSource {
                            id: m.id,
                            source: m.source,
                            rego_v0: m.rego_v0,
                        })
                        .collect(),
                    data: (!rego.data.is_empty()).then_some(rego.data),
                };
                let c = client(&conn)?;
                // A language the files give nothing of is carried over from the active
                // version: adding Rego modules leaves the Cedar policies in force, and
                // adding Cedar leaves the Rego modules (said on stderr, with the version).
                if !(gives_cedar && gives_rego)
                    && let Some(active) = c.list_policies().await.or_fail(&conn)?.active_version
                {
                    let base = c.get_policies(&active.to_string()).await.or_fail(&conn)?;
                    let base_has_cedar = !base.policies.is_empty() || !base.schema_fragments.is_empty();
                    if !gives_cedar && base_has_cedar {
                        eprintln!("note: the Cedar policies and schema of active version {active} are kept");
                        req.policies = base.policies;
                        req.schema_fragments = base.schema_fragments;
                    }
                    let base_has_rego = !base.rego_modules.is_empty() || !base.data.is_empty();
                    if !gives_rego && base_has_rego {
                        eprintln!(
                            "note: the Rego modules and data of active version {active} are kept"
                        );
                        rego_modules = base.rego_modules.len();
                        req.rego_modules = base.rego_modules;
                        req.data = (!base.data.is_empty()).then_some(base.data);
                    }
                }
                let added = c
                    .add_policies(&req)
                    .await
                    .or_fail(&conn)
                    .map_err(|Fail(c, m)| Fail(c, format!("{m}{}", joined.map())))?;
                if activate {
                    c.activate_policies(&added.version.to_string())
                        .await
                        .or_fail(&conn)?;
                }
                Ok(added)
            }
            .await;
            finish(&conn, r, |v| {
                let mut parts = Vec::new();
                if !v.policy_ids.is_empty() || rego_modules == 0 {
                    parts.push(format!(
                        "{} policies: {}",
                        v.policy_ids.len(),
                        v.policy_ids.join(", ")
                    ));
                }
                if rego_modules > 0 {
                    parts.push(format!("{rego_modules} Rego modules"));
                }
                println!("policy version {} added ({})", v.version, parts.join("; "));
                if activate {
                    println!(
                        "and activated: it replaces the whole previous version (only these \
                         policies and modules are in force now)"
                    );
                } else {
                    println!(
                        "not active yet; `mandate policy activate {}` replaces the whole \
                         active version with it",
                        v.version
                    );
                }
            })
        }
        PolicyCmd::List { conn } => {
            let r = async { client(&conn)?.list_policies().await.or_fail(&conn) }.await;
            finish(&conn, r, |v| {
                say_if_none(&v.items, "no policy versions yet (`mandate policy add`)");
                for p in &v.items {
                    let mark = if p.active { "*" } else { " " };
                    println!(
                        "{mark} v{}  {}  by {}  {}",
                        p.version, p.created_at, p.created_by, p.note
                    );
                }
            })
        }
        PolicyCmd::Show { conn, version } => {
            let r = async {
                client(&conn)?
                    .get_policies(&version.to_string())
                    .await
                    .or_fail(&conn)
            }
            .await;
            finish(&conn, r, |v| {
                println!("{}", v.policies);
                for f in &v.schema_fragments {
                    println!("--- schema fragment ---\n{f}");
                }
                for m in &v.rego_modules {
                    let v0 = if m.rego_v0 { " (Rego v0)" } else { "" };
                    println!("--- Rego module {}{v0} ---\n{}", m.id, m.source);
                }
                if !v.data.is_empty() {
                    println!(
                        "--- data ---\n{}",
                        serde_json::to_string_pretty(&v.data).unwrap_or_default()
                    );
                }
            })
        }
        PolicyCmd::Schema => {
            // Written, not `print!`ed: a closed pipe (`| head`) ends it quietly.
            use std::io::Write as _;
            match std::io::stdout()
                .lock()
                .write_all(mandate_policy::BASE_SCHEMA.as_bytes())
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => exit::<()>(Err(Fail(1, format!("cannot write the schema: {e}")))),
            }
        }
        PolicyCmd::Validate {
            files,
            schemas,
            rego_v0,
        } => exit(validate(&files, &schemas, rego_v0)),
        PolicyCmd::Activate { conn, version } => {
            let r = async {
                client(&conn)?
                    .activate_policies(&version.to_string())
                    .await
                    .or_fail(&conn)
            }
            .await;
            finish(&conn, r, |v| {
                println!("active policy version: {}", v.active_version)
            })
        }
        PolicyCmd::Replay(args) => crate::replay_cli::run(args).await,
        PolicyCmd::Rollback { conn } => {
            let r = async { client(&conn)?.rollback_policies().await.or_fail(&conn) }.await;
            finish(&conn, r, |v| {
                println!("rolled back to policy version {}", v.active_version)
            })
        }
        PolicyCmd::Test {
            files,
            policies,
            schemas,
            run,
            rego_v0,
        } if policies.is_empty() => exit((|| {
            let inputs = policy_input::read_inputs(
                &files,
                policy_input::ReadOptions {
                    rego_v0,
                    tests: true,
                },
            )?;
            note_inputs(&inputs);
            if !schemas.is_empty() || !inputs.cedar.is_empty() {
                return Err(usage(
                    "Cedar tests take the test file and --policies (and --schema); Rego \
                     tests take the modules and their `*_test.rego`",
                ));
            }
            policy_input::run_tests(&inputs.rego, run.as_deref())
        })()),
        PolicyCmd::Test {
            files,
            policies,
            schemas,
            ..
        } => exit((|| {
            let [file] = files.as_slice() else {
                return Err(usage(
                    "with --policies (Cedar), give exactly one test file (JSON: {\"tests\": [...]})",
                ));
            };
            let compiled = compile_local(&policies, &schemas)?;
            let report = mandate_policy::run_tests(&compiled, &read(file)?)
                .map_err(|e| Fail(2, format!("{}: {e}", file.display())))?;
            println!("{report}");
            if report.all_passed() {
                Ok(())
            } else {
                Err(Fail(
                    1,
                    format!(
                        "{} of {} tests failed",
                        report.failed(),
                        report.results.len()
                    ),
                ))
            }
        })()),
        PolicyCmd::Eval {
            files,
            data_path,
            input,
            rego_v0,
        } => exit((|| {
            let inputs = policy_input::read_inputs(
                &files,
                policy_input::ReadOptions {
                    rego_v0,
                    tests: true,
                },
            )?;
            let input = input.as_deref().map(policy_input::read_input).transpose()?;
            policy_input::eval(&inputs.rego, &data_path, input.as_ref())
        })()),
    }
}

/// Prints what reading the inputs left out or could not check, on standard error.
fn note_inputs(inputs: &policy_input::Inputs) {
    if !inputs.left_out_tests.is_empty() {
        eprintln!(
            "note: left out {} test module(s) (`*_test.rego`; `mandate policy test` runs \
             them): {}",
            inputs.left_out_tests.len(),
            inputs.left_out_tests.join(", ")
        );
    }
    for n in &inputs.notes {
        eprintln!("note: {n}");
    }
}

/// `policy validate`: Cedar compiled against the schema, Rego parsed and analysed; every
/// located error, exit 1.
fn validate(
    files: &[std::path::PathBuf],
    schemas: &[std::path::PathBuf],
    rego_v0: bool,
) -> Res<()> {
    let inputs = policy_input::read_inputs(
        files,
        policy_input::ReadOptions {
            rego_v0,
            tests: true,
        },
    )?;
    note_inputs(&inputs);
    let mut all_schemas = inputs.schemas.clone();
    all_schemas.extend(expand(schemas, "cedarschema")?);
    let cedar = if inputs.cedar.is_empty() {
        None
    } else {
        Some(compile_local(&inputs.cedar, &all_schemas))
    };
    let rego = inputs
        .has_rego()
        .then(|| policy_input::compile_rego_local(&inputs.rego));
    if cedar.is_none() && rego.is_none() {
        return Err(usage(
            "nothing to validate: no Cedar policy or Rego module among the files",
        ));
    }
    let mut failed = Vec::new();
    if let Some(c) = cedar {
        match c {
            Ok(c) => {
                println!(
                    "valid: {} policies ({})",
                    c.len(),
                    c.policy_ids().join(", ")
                );
                for w in c.warnings() {
                    println!("warning: {w}");
                }
            }
            Err(Fail(_, m)) => failed.push(m),
        }
    }
    if let Some(r) = rego {
        match r {
            Ok(p) => println!(
                "valid: {} Rego modules (packages: {})",
                inputs.rego.modules.len(),
                p.packages().join(", ")
            ),
            Err(Fail(_, m)) => failed.push(m),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Fail(1, failed.join("\n")))
    }
}

fn public_key(arg: &str) -> Res<ed25519_dalek::VerifyingKey> {
    use base64::Engine as _;
    let text = text_arg(arg)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| usage("the public key is not base64"))?;
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| usage("the public key is not 32 bytes"))?;
    ed25519_dalek::VerifyingKey::from_bytes(&arr).map_err(|_| usage("not an Ed25519 public key"))
}

pub async fn audit(cmd: AuditCmd) -> ExitCode {
    match cmd {
        AuditCmd::Events {
            conn,
            agent,
            kind,
            decision,
            since,
            until,
            limit,
            cursor,
        } => {
            let q = AuditQuery {
                agent,
                kind,
                decision,
                since,
                until,
                limit,
                cursor,
            };
            let r = async { client(&conn)?.audit_events(&q).await.or_fail(&conn) }.await;
            finish(&conn, r, |v| {
                say_if_none(&v.items, "no audit events");
                for e in &v.items {
                    // The reasons as JSON, nothing when there are none.
                    let reasons = if e.reasons.is_empty() {
                        String::new()
                    } else {
                        serde_json::to_string(&e.reasons).unwrap_or_default()
                    };
                    println!(
                        "{}  {}  {:<20} {:<6} agent={} action={} {reasons}",
                        e.seq,
                        e.time,
                        e.kind,
                        or_dash(e.decision.as_deref()),
                        or_dash(e.agent.as_deref()),
                        or_dash(e.action.as_deref()),
                    );
                }
                more(v.next_cursor);
            })
        }
        AuditCmd::Checkpoint { conn } => {
            let r = async { client(&conn)?.latest_checkpoint().await.or_fail(&conn) }.await;
            finish(&conn, r, |v| {
                println!("node:       {}", v.node);
                println!("public key: {}", v.public_key);
                println!("size:       {}", v.size);
                if let Some(t) = &v.checkpoint {
                    println!("\n{t}");
                }
            })
        }
        AuditCmd::Export {
            conn,
            out,
            all_nodes: true,
        } => exit(crate::audit_cli::export_all(&conn, out).await),
        AuditCmd::Export {
            conn,
            out,
            all_nodes: false,
        } => exit(
            async {
                let body = client(&conn)?.audit_export().await.or_fail(&conn)?;
                match out {
                    Some(path) => std::fs::write(&path, body)
                        .map_err(|e| Fail(1, format!("writing {}: {e}", path.display()))),
                    None => {
                        print!("{body}");
                        Ok(())
                    }
                }
            }
            .await,
        ),
        AuditCmd::Verify {
            file,
            public_key: keys,
        } if file.is_dir() => exit(crate::audit_cli::verify_dir(&file, &keys, public_key)),
        AuditCmd::Verify {
            file,
            public_key: keys,
        } => exit(match keys.as_slice() {
            [key] => public_key(key).and_then(|key| crate::incident_cli::verify_file(&file, &key)),
            _ => Err(crate::cmd_io::usage(
                "give the node's audit public key once: --public-key KEY",
            )),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review of issue 19: joined policy files are introduced by a `// file: NAME` line;
    /// a name holding a line break must not end that comment and turn the rest of the
    /// name into policy text (a permit no file contains).
    #[test]
    fn a_file_name_never_becomes_policy_text() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.cedar"),
            "forbid(principal, action, resource);\n",
        )
        .unwrap();
        let sneaky = "b\npermit(principal, action, resource);\n.cedar";
        std::fs::write(dir.path().join(sneaky), "").unwrap();
        let Ok(j) = Joined::read(&[dir.path().to_owned()]) else {
            panic!("joined")
        };
        let policies: Vec<&str> = j
            .text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(
            policies,
            ["forbid(principal, action, resource);"],
            "{}",
            j.text
        );
    }
}
