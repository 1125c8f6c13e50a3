//! The CLI's client side: each command is one call to the admin API, printed as a short
//! summary or, with `--json`, as the server's JSON.

use std::process::ExitCode;

use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::cmd_io::{
    Fail, Res, call, call_raw, finish, items, list, s, say_if_none, url_query, usage,
};
use crate::{
    AdminTokenCmd, AgentCmd, Conn, CredentialCmd, CredentialType, KeysCmd, RoleArg, StatusArgs,
};
use crate::{AuditCmd, PolicyCmd};

fn text_or_file(v: &str) -> Res<Value> {
    let text = match v.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| usage(format!("reading {path}: {e}")))?
        }
        None => v.to_owned(),
    };
    serde_json::from_str(&text).map_err(|e| usage(format!("not valid JSON: {e}")))
}

fn labels(list: &[String]) -> Res<Value> {
    let mut m = Map::new();
    for l in list {
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| usage(format!("label `{l}` is not key=value")))?;
        m.insert(k.to_owned(), json!(v));
    }
    Ok(Value::Object(m))
}

/// The body of register and update: only the fields given (labels replace all labels).
fn agent_fields(
    text: [(&str, Option<String>); 3],
    ls: &[String],
    boundary: Option<String>,
) -> Res<Value> {
    let mut body = Map::new();
    for (k, v) in text {
        if let Some(v) = v {
            body.insert(k.into(), json!(v));
        }
    }
    if !ls.is_empty() {
        body.insert("labels".into(), labels(ls)?);
    }
    if let Some(b) = boundary {
        body.insert("boundary".into(), text_or_file(&b)?);
    }
    Ok(Value::Object(body))
}

fn agent_line(a: &Value) -> String {
    format!(
        "{}  {:<24} {:<15} owner={}",
        s(a, "id"),
        s(a, "name"),
        s(a, "status"),
        s(a, "owner")
    )
}

fn print_agent(a: &Value) {
    println!("{}", agent_line(a));
    if let Some(p) = a
        .get("purpose")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
    {
        println!("  purpose: {p}");
    }
    if let Some(l) = a
        .get("labels")
        .and_then(Value::as_object)
        .filter(|l| !l.is_empty())
    {
        let ls: Vec<String> = l
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        println!("  labels: {}", ls.join(", "));
    }
    if let Some(r) = a.get("status_reason").and_then(Value::as_str) {
        println!("  reason: {r}");
    }
}

fn print_credential(out: &Value) {
    let c = out.get("credential").unwrap_or(&Value::Null);
    println!(
        "{}  {}  {}  agent={}",
        s(c, "id"),
        s(c, "type"),
        s(c, "state"),
        s(c, "agent_id")
    );
    if let Some(p) = out.get("previous") {
        println!(
            "  previous {} works until {}",
            s(p, "id"),
            s(p, "expires_at")
        );
    }
    if let Some(secret) = out.get("client_secret").and_then(Value::as_str) {
        println!("  client_id:     {}", s(c, "agent_id"));
        println!("  client_secret: {secret}");
        println!("  (the secret is shown only this once)");
    }
}

fn status_call(a: &StatusArgs, verb: &str) -> (Conn, String, Option<Value>) {
    let mut body = Map::new();
    if let Some(r) = &a.reason {
        body.insert("reason".into(), json!(r));
    }
    if a.revoke_tokens {
        body.insert("revoke_tokens".into(), json!(true));
    }
    let body = (!body.is_empty()).then_some(Value::Object(body));
    (a.conn.clone(), format!("/v1/agents/{}/{verb}", a.id), body)
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
                let fields = [
                    ("name", Some(name)),
                    ("owner", Some(owner)),
                    ("purpose", purpose),
                ];
                let body = agent_fields(fields, &ls, boundary)?;
                call(&conn, Method::POST, "/v1/agents", Some(body)).await
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
            let mut q = url_query(&[
                ("owner", owner),
                ("status", status),
                ("label", label),
                ("limit", limit.map(|l| l.to_string())),
                ("cursor", cursor),
            ]);
            if !q.is_empty() {
                q.insert(0, '?');
            }
            let r = call(&conn, Method::GET, &format!("/v1/agents{q}"), None).await;
            finish(&conn, r, |v| {
                say_if_none(v, "no agents");
                for a in items(v) {
                    println!("{}", agent_line(a));
                }
                if let Some(c) = v.get("next_cursor").and_then(Value::as_str) {
                    println!("(more: --cursor {c})");
                }
            })
        }
        AgentCmd::Show { conn, id } => {
            let r = call(&conn, Method::GET, &format!("/v1/agents/{id}"), None).await;
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
                let body = agent_fields(
                    [("name", name), ("owner", owner), ("purpose", purpose)],
                    &ls,
                    boundary,
                )?;
                call(
                    &conn,
                    Method::PATCH,
                    &format!("/v1/agents/{id}"),
                    Some(body),
                )
                .await
            }
            .await;
            finish(&conn, r, print_agent)
        }
        AgentCmd::Suspend(a) => lifecycle(status_call(&a, "suspend")).await,
        AgentCmd::Resume(a) => lifecycle(status_call(&a, "resume")).await,
        AgentCmd::Decommission(a) => lifecycle(status_call(&a, "decommission")).await,
        AgentCmd::Credential(c) => credential(c).await,
        AgentCmd::Key(c) => crate::agent_key_cli::agent_key(c),
    }
}

async fn lifecycle((conn, path, body): (Conn, String, Option<Value>)) -> ExitCode {
    let r = call(&conn, Method::POST, &path, body).await;
    finish(&conn, r, print_agent)
}

async fn credential(cmd: CredentialCmd) -> ExitCode {
    match cmd {
        CredentialCmd::Add {
            conn,
            agent,
            kind,
            jwk,
            expires_at,
        } => {
            let r = async {
                let t = match kind {
                    CredentialType::ClientSecret => "client_secret",
                    CredentialType::PublicKey => "public_key",
                };
                let mut body = Map::new();
                body.insert("type".into(), json!(t));
                if let Some(j) = jwk {
                    body.insert("jwk".into(), text_or_file(&j)?);
                }
                if let Some(e) = expires_at {
                    body.insert("expires_at".into(), json!(e));
                }
                let path = format!("/v1/agents/{agent}/credentials");
                call(&conn, Method::POST, &path, Some(Value::Object(body))).await
            }
            .await;
            finish(&conn, r, print_credential)
        }
        CredentialCmd::List { conn, agent } => {
            let r = call(
                &conn,
                Method::GET,
                &format!("/v1/agents/{agent}/credentials"),
                None,
            )
            .await;
            finish(&conn, r, |v| {
                say_if_none(v, "no credentials");
                for c in items(v) {
                    let until = c
                        .get("expires_at")
                        .and_then(Value::as_str)
                        .map(|e| format!("  until {e}"))
                        .unwrap_or_default();
                    println!(
                        "{}  {:<13} {:<9}{until}",
                        s(c, "id"),
                        s(c, "type"),
                        s(c, "state")
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
        } => {
            let r = async {
                let mut body = Map::new();
                if let Some(o) = overlap_secs {
                    body.insert("overlap_secs".into(), json!(o));
                }
                if let Some(j) = jwk {
                    body.insert("jwk".into(), text_or_file(&j)?);
                }
                let path = format!("/v1/agents/{agent}/credentials/{credential}/rotate");
                call(&conn, Method::POST, &path, Some(Value::Object(body))).await
            }
            .await;
            finish(&conn, r, print_credential)
        }
        CredentialCmd::Revoke {
            conn,
            agent,
            credential,
        } => {
            let path = format!("/v1/agents/{agent}/credentials/{credential}");
            let r = call(&conn, Method::DELETE, &path, None).await;
            finish(&conn, r.map(|_| json!({"revoked": credential})), |v| {
                println!("revoked {}", s(v, "revoked"))
            })
        }
    }
}

pub async fn admin_token(cmd: AdminTokenCmd) -> ExitCode {
    match cmd {
        AdminTokenCmd::Create { conn, name, role } => {
            let role = match role {
                RoleArg::Admin => "admin",
                RoleArg::Auditor => "auditor",
                RoleArg::Approver => "approver",
                RoleArg::Service => "service",
            };
            let r = call(
                &conn,
                Method::POST,
                "/v1/admin-tokens",
                Some(json!({"name": name, "role": role})),
            )
            .await;
            finish(&conn, r, |v| {
                let t = v.get("admin_token").unwrap_or(&Value::Null);
                println!("{}  {}  role={}", s(t, "id"), s(t, "name"), s(t, "role"));
                println!("  token: {}", s(v, "token"));
                println!("  (the token is shown only this once)");
            })
        }
        AdminTokenCmd::List { conn } => {
            let r = call(&conn, Method::GET, "/v1/admin-tokens", None).await;
            finish(&conn, r, |v| {
                say_if_none(v, "no admin tokens");
                for t in items(v) {
                    let state = if t.get("revoked_at").is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!(
                        "{}  {:<24} {:<9} {state}",
                        s(t, "id"),
                        s(t, "name"),
                        s(t, "role")
                    );
                }
            })
        }
        AdminTokenCmd::Revoke { conn, id } => {
            let r = call(
                &conn,
                Method::DELETE,
                &format!("/v1/admin-tokens/{id}"),
                None,
            )
            .await;
            finish(&conn, r.map(|_| json!({"revoked": id})), |v| {
                println!("revoked {}", s(v, "revoked"))
            })
        }
    }
}

pub async fn keys(cmd: KeysCmd) -> ExitCode {
    match cmd {
        KeysCmd::Rotate { conn } => {
            let r = call(&conn, Method::POST, "/v1/keys/rotate", None).await;
            finish(&conn, r, |v| {
                println!("now signing with kid {}", s(v, "kid"));
                println!(
                    "kid {} stays published until {}",
                    s(v, "retired_kid"),
                    s(v, "retired_published_until")
                );
            })
        }
        KeysCmd::List { conn } => {
            let r = call(&conn, Method::GET, "/v1/keys", None).await;
            finish(&conn, r, |v| {
                say_if_none(v, "no signing keys");
                for k in items(v) {
                    let what = if k.get("current").and_then(Value::as_bool) == Some(true) {
                        "current".to_owned()
                    } else {
                        format!("published until {}", s(k, "published_until"))
                    };
                    println!("{}  {what}", s(k, "kid"));
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
        let files = expand(args, "cedar")?;
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

fn done(r: Res<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(code, msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(code)
        }
    }
}

pub async fn policy(cmd: PolicyCmd) -> ExitCode {
    match cmd {
        PolicyCmd::Add {
            conn,
            files,
            schemas,
            note,
            activate,
        } => {
            let r = async {
                let joined = Joined::read(&files)?;
                let body = json!({"policies": joined.text, "schema_fragments": read_schemas(&schemas)?, "note": note});
                let added = call(&conn, Method::POST, "/v1/policies", Some(body))
                    .await
                    .map_err(|Fail(c, m)| Fail(c, format!("{m}{}", joined.map())))?;
                if activate {
                    let v = added.get("version").and_then(Value::as_i64).unwrap_or(0);
                    call(&conn, Method::POST, &format!("/v1/policies/{v}/activate"), None).await?;
                }
                Ok(added)
            }
            .await;
            finish(&conn, r, |v| {
                let ids: Vec<&str> = list(v, "policy_ids").filter_map(Value::as_str).collect();
                println!(
                    "policy version {} added ({} policies: {})",
                    v.get("version").unwrap_or(&Value::Null),
                    ids.len(),
                    ids.join(", ")
                );
                if activate {
                    println!(
                        "and activated: it replaces the whole previous set (only these \
                         policies are enforced now)"
                    );
                } else {
                    println!(
                        "not active yet; `mandate policy activate {}` replaces the whole \
                         active set with it",
                        v.get("version").unwrap_or(&Value::Null)
                    );
                }
            })
        }
        PolicyCmd::List { conn } => {
            let r = call(&conn, Method::GET, "/v1/policies", None).await;
            finish(&conn, r, |v| {
                say_if_none(v, "no policy versions yet (`mandate policy add`)");
                for p in items(v) {
                    let mark = if p.get("active").and_then(Value::as_bool) == Some(true) {
                        "*"
                    } else {
                        " "
                    };
                    println!(
                        "{mark} v{}  {}  by {}  {}",
                        p.get("version").unwrap_or(&Value::Null),
                        s(p, "created_at"),
                        s(p, "created_by"),
                        s(p, "note")
                    );
                }
            })
        }
        PolicyCmd::Show { conn, version } => {
            let r = call(&conn, Method::GET, &format!("/v1/policies/{version}"), None).await;
            finish(&conn, r, |v| {
                println!("{}", s(v, "policies"));
                for f in list(v, "schema_fragments") {
                    println!("--- schema fragment ---\n{}", f.as_str().unwrap_or(""));
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
                Err(e) => done(Err(Fail(1, format!("cannot write the schema: {e}")))),
            }
        }
        PolicyCmd::Validate { files, schemas } => done(compile_local(&files, &schemas).map(|c| {
            println!(
                "valid: {} policies ({})",
                c.len(),
                c.policy_ids().join(", ")
            );
            for w in c.warnings() {
                println!("warning: {w}");
            }
        })),
        PolicyCmd::Activate { conn, version } => {
            let r = call(
                &conn,
                Method::POST,
                &format!("/v1/policies/{version}/activate"),
                None,
            )
            .await;
            finish(&conn, r, |v| {
                println!(
                    "active policy version: {}",
                    v.get("active_version").unwrap_or(&Value::Null)
                )
            })
        }
        PolicyCmd::Rollback { conn } => {
            let r = call(&conn, Method::POST, "/v1/policies/rollback", None).await;
            finish(&conn, r, |v| {
                println!(
                    "rolled back to policy version {}",
                    v.get("active_version").unwrap_or(&Value::Null)
                )
            })
        }
        PolicyCmd::Test {
            file,
            policies,
            schemas,
        } => done((|| {
            let compiled = compile_local(&policies, &schemas)?;
            let report = mandate_policy::run_tests(&compiled, &read(&file)?)
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
    }
}

fn public_key(arg: &str) -> Res<ed25519_dalek::VerifyingKey> {
    use base64::Engine as _;
    let text = match arg.strip_prefix('@') {
        Some(path) => read(std::path::Path::new(path))?,
        None => arg.to_owned(),
    };
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
            let mut q = url_query(&[
                ("agent", agent),
                ("kind", kind),
                ("decision", decision),
                ("since", since),
                ("until", until),
                ("limit", limit.map(|l| l.to_string())),
                ("cursor", cursor.map(|c| c.to_string())),
            ]);
            if !q.is_empty() {
                q.insert(0, '?');
            }
            let r = call(&conn, Method::GET, &format!("/v1/audit/events{q}"), None).await;
            finish(&conn, r, |v| {
                say_if_none(v, "no audit events");
                for e in items(v) {
                    println!(
                        "{:>6}  {}  {:<20} {:<6} agent={} action={} {}",
                        e.get("seq").unwrap_or(&Value::Null),
                        s(e, "time"),
                        s(e, "kind"),
                        s(e, "decision"),
                        s(e, "agent"),
                        s(e, "action"),
                        e.get("reasons")
                            .map(ToString::to_string)
                            .unwrap_or_default()
                    );
                }
                if let Some(c) = v.get("next_cursor").and_then(Value::as_u64) {
                    println!("(more: --cursor {c})");
                }
            })
        }
        AuditCmd::Checkpoint { conn } => {
            let r = call(&conn, Method::GET, "/v1/audit/checkpoints/latest", None).await;
            finish(&conn, r, |v| {
                println!("node:       {}", s(v, "node"));
                println!("public key: {}", s(v, "public_key"));
                println!("size:       {}", v.get("size").unwrap_or(&Value::Null));
                if let Some(t) = v.get("checkpoint").and_then(Value::as_str) {
                    println!("\n{t}");
                }
            })
        }
        AuditCmd::Export { conn, out } => done(
            async {
                let body = call_raw(&conn, Method::GET, "/v1/audit/export", None).await?;
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
            public_key: key,
        } => done(public_key(&key).and_then(|key| crate::incident_cli::verify_file(&file, &key))),
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
