//! The `oauth` operations: the OAuth 2.0 token service (client credentials only). One
//! marker function per operation carries its `#[utoipa::path]`; its doc comment names the
//! mandate-http handler that serves it.

#![expect(
    clippy::needless_raw_string_hashes,
    reason = "the prose is pasted as written"
)]

use crate::responses::*;
use crate::*;

/// The contract of `GET /oauth/authorize`, served by mandate-http's handler `oauth::authorize`.
#[utoipa::path(
    get,
    path = "/oauth/authorize",
    tag = "oauth",
    operation_id = "oauthAuthorize",
    summary = "Authorization endpoint (RFC 6749 §3.1) with no flow behind it",
    description = r#"Published as `authorization_endpoint` because RFC 8414 metadata clients (the MCP
SDKs) require one. Mandate has no authorization-code or implicit flow: every
request is answered 400 `unsupported_response_type`, whatever its parameters.
No client registers a redirection URI, so no `redirect_uri` is ever followed
(RFC 6749 §4.1.2.1): the error is the response itself."#,
    responses(
        (status = 400, response = OAuthUnsupportedResponseType)
    ),
    security()
)]
pub fn oauth_authorize() {}

/// The contract of `POST /oauth/authorize`, served by mandate-http's handler `oauth::authorize`.
#[utoipa::path(
    post,
    path = "/oauth/authorize",
    tag = "oauth",
    operation_id = "authorizePost",
    summary = "Authorization endpoint (form POST), the same refusal as GET",
    responses(
        (status = 400, response = OAuthUnsupportedResponseType)
    ),
    security()
)]
pub fn authorize_post() {}

/// The contract of `POST /oauth/token`, served by mandate-http's handler `token_endpoint::token`.
#[utoipa::path(
    post,
    path = "/oauth/token",
    tag = "oauth",
    operation_id = "issueToken",
    summary = "Issue an access token (client credentials grant)",
    description = r#"Authenticates the agent with exactly one method — HTTP Basic
(`client_secret_basic`), `client_id` + `client_secret` in the body
(`client_secret_post`) or an RFC 7523 client assertion (`private_key_jwt`, signed
`EdDSA` or `Ed25519` (RFC 9864, the same signature) by a registered OKP Ed25519 key
or `ES256` by a registered P-256 key, `aud` the token endpoint or the issuer,
each `jti` accepted once) — and issues a signed JWT access token (`typ: at+jwt`).
The agent must be `active`. Client-secret checks (Argon2id) run a bounded number at
a time; a request that cannot get a slot within 2 s is answered 503
`temporarily_unavailable` with `Retry-After: 1`.

The lifetime is the server's default, shortened to the agent's
`boundary.max_token_lifetime_secs` when that is smaller. The token's `aud` is the
`resource` values given (RFC 8707), or the configured default audience."#,
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The access token.", body = TokenResponse, content_type = "application/json", headers(("Cache-Control" = inline(NoStore), description = "Always `no-store`."), ("Pragma" = inline(NoCache), description = "Always `no-cache`."))),
        (status = 400, description = r#"`invalid_request` (not a form, body too large, a repeated parameter, more than
one authentication method, `client_secret` without `client_id`, a `client_id`
that differs from the Basic user, half a client-assertion pair, `grant_type`
missing), `unsupported_grant_type`
(anything but `client_credentials` and token exchange), `invalid_grant` (token
exchange: the mandate is not active or not this agent's), `invalid_scope` (scope syntax, over
1024 characters, or a scope token no action pattern of the agent's boundary
matches; a boundary without grants allows no scope) or `invalid_target` (a
`resource` that is not an absolute URI without a fragment, more than 8 of
them, or one the boundary's `audiences` do not match and that is not the
default audience)."#, body = OAuthError, content_type = "application/json", headers(("Cache-Control" = inline(NoStore), description = "Always `no-store`."), ("Pragma" = inline(NoCache), description = "Always `no-cache`."))),
        (status = 401, response = OAuthInvalidClient),
        (status = 429, response = OAuthSlowDown),
        (status = 500, response = OAuthServerError),
        (status = 503, description = r#"`temporarily_unavailable`: too many client-secret checks in progress, the
issuance could not be recorded in the audit log (no token is handed out
before it is), or the decision snapshot is stale (see the API description);
retry after `Retry-After` seconds."#, body = OAuthError, content_type = "application/json")
    ),
    security(("clientSecretBasic" = []), ())
)]
pub fn issue_token() {}

/// The contract of `POST /oauth/introspect`, served by mandate-http's handler `oauth::introspect`.
#[utoipa::path(
    post,
    path = "/oauth/introspect",
    tag = "oauth",
    operation_id = "introspectToken",
    summary = "Introspect an access token (RFC 7662)",
    description = r#"Callable with an admin bearer token (any role, `service` included; sees every
token) or by an agent authenticating as at `/oauth/token` (sees only its own
tokens; another client's token is reported inactive). A token is active when its signature, type, issuer
and validity window check out, it is not revoked, its agent is `active`, and it
was issued after the agent's token cutoff (set by revoking a credential or by a
suspend with `revoke_tokens`)."#,
    request_body(content = TokenActionRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = r#"The token's state; `{"active": false}` for any token not active."#, body = IntrospectionResponse, content_type = "application/json", headers(("Cache-Control" = inline(NoStore), description = "Always `no-store`."), ("Pragma" = inline(NoCache), description = "Always `no-cache`."))),
        (status = 400, description = "`invalid_request`: not a form, body too large, a repeated parameter, inconsistent client-authentication parameters (as at `/oauth/token`), an admin bearer token together with client credentials, `token` missing.", body = OAuthError, content_type = "application/json", headers(("Cache-Control" = inline(NoStore), description = "Always `no-store`."), ("Pragma" = inline(NoCache), description = "Always `no-cache`."))),
        (status = 401, response = OAuthInvalidClient),
        (status = 429, response = OAuthSlowDown),
        (status = 500, response = OAuthServerError),
        (status = 503, description = "`temporarily_unavailable`: too many client-secret checks in progress, or decisions are held by a stale snapshot (see the API description); retry after `Retry-After` seconds.", body = OAuthError, content_type = "application/json")
    ),
    security(("adminBearer" = []), ("clientSecretBasic" = []), ())
)]
pub fn introspect_token() {}

/// The contract of `POST /oauth/revoke`, served by mandate-http's handler `oauth::revoke`.
#[utoipa::path(
    post,
    path = "/oauth/revoke",
    tag = "oauth",
    operation_id = "revokeToken",
    summary = "Revoke an access token (RFC 7009)",
    description = r#"Callable with an `admin`-role bearer token (any token) or by an agent (its own
tokens only). Answers 200 also for tokens that are already expired, malformed or
not signed by this server."#,
    request_body(content = TokenActionRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke. Empty body.", headers(("Cache-Control" = inline(NoStore), description = "Always `no-store`."), ("Pragma" = inline(NoCache), description = "Always `no-cache`."))),
        (status = 400, description = r#"`invalid_request` (not a form, body too large, a repeated parameter,
inconsistent client-authentication parameters, `token` missing) or
`unauthorized_client` (an agent revoking another client's token)."#, body = OAuthError, content_type = "application/json", headers(("Cache-Control" = inline(NoStore), description = "Always `no-store`."), ("Pragma" = inline(NoCache), description = "Always `no-cache`."))),
        (status = 403, description = "`insufficient_scope`: a read-only (auditor or approver) admin token.", body = OAuthError, content_type = "application/json"),
        (status = 401, response = OAuthInvalidClient),
        (status = 429, response = OAuthSlowDown),
        (status = 500, response = OAuthServerError),
        (status = 503, description = "`temporarily_unavailable`: too many client-secret checks in progress, or decisions are held by a stale snapshot (see the API description); retry after `Retry-After` seconds.", body = OAuthError, content_type = "application/json")
    ),
    security(("adminBearer" = []), ("clientSecretBasic" = []), ())
)]
pub fn revoke_token() {}
