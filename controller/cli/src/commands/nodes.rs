//! `nodes:*`: the cluster's nodes (admins).

use std::io::Write;

use anyhow::bail;
use clap::Subcommand;

use crate::Context;
use crate::args::JsonArg;
use crate::commands::client;
use crate::output::{json, table};

#[derive(Debug, Subcommand)]
pub(crate) enum NodesVerb {
    /// List the cluster's nodes and the app containers on each (admins only).
    #[command(name = "nodes")]
    Nodes(JsonArg),
    /// Move a node's app containers to other nodes, each replaced before it stops (admins
    /// only).
    #[command(name = "nodes:drain")]
    NodesDrain {
        /// The node's id (or the start of it) or host name.
        #[arg(value_parser = node_name)]
        node: String,
    },
    /// Let a drained node take containers again (admins only).
    #[command(name = "nodes:activate")]
    NodesActivate {
        /// The node's id (or the start of it) or host name.
        #[arg(value_parser = node_name)]
        node: String,
    },
    /// Print what a new node runs to join the cluster (admins only).
    #[command(name = "nodes:join")]
    NodesJoin,
}

/// A node's id or host name: letters, digits, `.`, `_` and `-`.
fn node_name(text: &str) -> Result<String, String> {
    let fits = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if !text.is_empty() && text.len() <= 253 && text.chars().all(fits) {
        Ok(text.to_owned())
    } else {
        Err(format!("`{}` is not a node id or host name", text.escape_debug()))
    }
}

pub(crate) async fn execute(
    verb: NodesVerb,
    context: &Context,
    out: &mut impl Write,
    _err: &mut impl Write,
) -> anyhow::Result<()> {
    let client = client(context)?;
    match verb {
        NodesVerb::Nodes(flag) => {
            let nodes = client.nodes().await?;
            if flag.json {
                return json(out, &nodes);
            }
            if nodes.is_empty() {
                bail!("this platform runs on one engine and has no nodes (SKIFF_RUNTIME=swarm has)");
            }
            let rows = nodes
                .iter()
                .map(|node| {
                    let containers: Vec<String> =
                        node.containers.iter().map(|c| format!("{}/{} v{}", c.app, c.process, c.release)).collect();
                    vec![
                        node.id.chars().take(12).collect(),
                        node.hostname.clone(),
                        node.address.clone(),
                        node.state.clone(),
                        node.availability.clone(),
                        if node.manager { "manager" } else { "worker" }.to_owned(),
                        if containers.is_empty() { "-".to_owned() } else { containers.join(", ") },
                    ]
                })
                .collect();
            table(
                out,
                context.colour,
                &["ID", "HOSTNAME", "ADDRESS", "STATE", "AVAILABILITY", "ROLE", "CONTAINERS"],
                rows,
            )
        }
        NodesVerb::NodesDrain { node } => {
            let node = client.drain_node(&node).await?;
            let moving = node.containers.len();
            writeln!(
                out,
                "Draining {} ({}): {moving} container{} moving to other nodes, each replaced before it stops",
                node.hostname,
                node.address,
                if moving == 1 { "" } else { "s" }
            )?;
            Ok(())
        }
        NodesVerb::NodesActivate { node } => {
            let node = client.activate_node(&node).await?;
            writeln!(out, "{} ({}) takes containers again", node.hostname, node.address)?;
            Ok(())
        }
        NodesVerb::NodesJoin => {
            let join = client.node_join().await?;
            writeln!(out, "# On the new node, as root: trust the platform's registry ({}),", join.registry)?;
            match &join.registry_ca {
                Some(ca) => {
                    let dir = format!("/etc/docker/certs.d/{}", join.registry);
                    writeln!(out, "mkdir -p {dir}")?;
                    writeln!(out, "cat > {dir}/ca.crt <<'EOF'\n{}EOF", ca)?;
                }
                None => writeln!(
                    out,
                    "# the registry's certificate is the operator's own: put the CA that issued it in\n\
                     # /etc/docker/certs.d/{}/ca.crt",
                    join.registry
                )?,
            }
            writeln!(out, "# then join the swarm:\n{}", join.command)?;
            Ok(())
        }
    }
}
