// The report every interop script prints: one line per check (`ok <check>` or
// `FAIL <check>: <why>`), then `all <n> checks passed` and exit 0, or exit 1. The Rust
// side (`node_clients.rs`) asserts on the exit status and on the `ok` lines it expects,
// so a check that was never reached counts as failed.

/** The environment variable `name`; exits 2 when it is missing. */
export function env(name) {
  const v = process.env[name];
  if (v === undefined || v === '') {
    process.stderr.write(`missing environment variable ${name}\n`);
    process.exit(2);
  }
  return v;
}

/** What went wrong, with what the server said when the error carries it. */
async function explain(e) {
  let why = String(e?.message ?? e);
  // openid-client's errors carry the OAuth error and, for a challenge, the response.
  if (e?.error !== undefined) why += ` (error ${e.error}: ${e.error_description ?? 'no error_description'})`;
  if (e?.status !== undefined) why += ` (HTTP ${e.status})`;
  if (e?.response instanceof Response) {
    const body = await e.response.text().catch(() => undefined);
    if (body) why += ` (body ${body})`;
  }
  if (e?.cause !== undefined) why += ` (cause ${JSON.stringify(e.cause)})`;
  // The MCP SDK's OAuth errors: the class names the error, the message is its description.
  if (typeof e?.errorCode === 'string') why += ` (${e.errorCode})`;
  // One line per check: a multi-line message (a ZodError's) is folded.
  return why.replace(/\s*\n\s*/g, ' ');
}

export class Checks {
  passed = 0;
  failed = 0;

  /** Runs `f`; prints its outcome; true when it passed. */
  async run(name, f) {
    try {
      await f();
      this.passed += 1;
      process.stdout.write(`ok ${name}\n`);
      return true;
    } catch (e) {
      this.failed += 1;
      const why = await explain(e);
      process.stdout.write(`FAIL ${name}: ${why}\n`);
      if (e?.stack) process.stderr.write(`${name}: ${e.stack}\n`);
      return false;
    }
  }

  /** A line of context that is not a check. */
  note(text) {
    process.stdout.write(`note ${text}\n`);
  }

  /** Prints the summary and exits. */
  finish() {
    if (this.failed === 0) {
      process.stdout.write(`all ${this.passed} checks passed\n`);
      process.exit(0);
    }
    process.stdout.write(`${this.failed} of ${this.passed + this.failed} checks failed\n`);
    process.exit(1);
  }
}
