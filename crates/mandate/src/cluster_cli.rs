//! The CLI for the cluster: `mandate cluster status` (the nodes sharing the store, their
//! snapshot and feed, the leader, whether PostgreSQL answers).

use std::process::ExitCode;

use clap::Subcommand;

use crate::Conn;
use crate::cmd_io::{OrFail, client, finish};

#[derive(Subcommand)]
pub enum ClusterCmd {
    /// The nodes sharing the store: alive, deciding, snapshot change number and proof
    /// age, feed lag, which one leads; and whether the store answers
    Status {
        #[command(flatten)]
        conn: Conn,
    },
}

fn opt(v: Option<u64>, unit: &str) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v}{unit}"))
}

pub async fn cluster(cmd: ClusterCmd) -> ExitCode {
    let ClusterCmd::Status { conn } = cmd;
    let r = async { client(&conn)?.cluster_status().await.or_fail(&conn) }.await;
    finish(&conn, r, |s| {
        println!(
            "store: {} ({})   leader: {}   answered by: {}",
            s.store,
            if s.store_reachable {
                "reachable"
            } else {
                "NOT REACHABLE"
            },
            s.leader.as_deref().unwrap_or("none"),
            s.this_node
        );
        println!(
            "{:<32} {:<6} {:<8} {:<7} {:>9} {:>10} {:>9}  last seen",
            "node", "alive", "deciding", "leader", "snapshot", "proof age", "feed lag"
        );
        for n in &s.nodes {
            println!(
                "{:<32} {:<6} {:<8} {:<7} {:>9} {:>10} {:>9}  {}",
                n.node,
                if n.alive { "yes" } else { "no" },
                if n.deciding { "yes" } else { "NO" },
                if n.leader { "leader" } else { "" },
                opt(n.snapshot_seq, ""),
                opt(n.snapshot_age_ms, " ms"),
                opt(n.feed_lag_ms, " ms"),
                n.last_seen_at.as_deref().unwrap_or("-"),
            );
        }
    })
}
