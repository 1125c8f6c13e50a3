//! Mandate's enforcement gateways: where agents act, Mandate decides, records and only
//! then forwards.
//!
//! - [`http`]: a reverse proxy. Routes map a path prefix to an upstream and the request
//!   (method, path segments, query, JSON body fields) to an action and a resource; the
//!   agent's bearer token is verified and stripped, and on allow the upstream's own
//!   credential, which Mandate holds, is injected.
//! - [`mcp`]: an MCP (Streamable HTTP) gateway in front of one or more MCP servers:
//!   tools namespaced by server, `tools/list` filtered to what the agent may call,
//!   each `tools/call` authorized, RFC 9728 protected-resource metadata.
//!
//! Both decide through an [`authz::Authorizer`], which the server implements with its
//! one decision function and audit log: this crate holds no policy, token or audit
//! logic of its own, and never sees an upstream secret except to inject it.

#![warn(missing_docs)]

pub mod authz;
mod bearer;
pub mod budget;
pub mod http;
mod lease;
pub mod mcp;
mod trace;
